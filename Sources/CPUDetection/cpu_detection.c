// OpenBLAS (Debian's DYNAMIC_ARCH build) reads OPENBLAS_CORETYPE in its library constructor,
// which runs before main() and before any constructor of the executable. On some AVX-512 CPUs
// its own detection falls back to the "Prescott" kernel, ten times too slow. An executable's
// .preinit_array runs before every shared library's constructor, so the choice made here is
// in place when OpenBLAS initialises. A value already in the environment wins.
#define _GNU_SOURCE
#include "CPUDetection.h"
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

static OnnxServeCoreTypeOrigin origin = OnnxServeCoreTypeFromEnvironment;

int onnx_serve_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int onnx_serve_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

const char *onnx_serve_coretype_for_cpu(void) {
    if (onnx_serve_cpu_has_avx512()) return "SkylakeX";
    if (onnx_serve_cpu_has_avx2()) return "Haswell";
    return NULL;
}

OnnxServeCoreTypeOrigin onnx_serve_coretype_origin(void) { return origin; }

int onnx_serve_available_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int count = CPU_COUNT(&set);
        if (count > 0) return count;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}

static void onnx_serve_choose_coretype(int argc, char **argv, char **envp) {
    (void)argc; (void)argv; (void)envp;
    // Our engine runs its own parallel loops and calls OpenBLAS single-threaded; without this,
    // OpenBLAS starts one idle server thread per core at load. A value set by the user wins.
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (set != NULL && set[0] != '\0') {
        origin = OnnxServeCoreTypeFromEnvironment;
        return;
    }
    const char *chosen = onnx_serve_coretype_for_cpu();
    if (chosen == NULL) {
        origin = OnnxServeCoreTypeLeftToOpenBLAS;
        return;
    }
    setenv("OPENBLAS_CORETYPE", chosen, 1);
    origin = OnnxServeCoreTypeChosenFromCPU;
}

__attribute__((section(".preinit_array"), used))
static void (*const onnx_serve_preinit)(int, char **, char **) = onnx_serve_choose_coretype;
