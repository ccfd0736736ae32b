// OpenBLAS (Debian's DYNAMIC_ARCH build) reads OPENBLAS_CORETYPE in its library constructor,
// which runs before main() and before any constructor of the executable. On some AVX-512 CPUs
// its own detection falls back to the "Prescott" kernel, ten times too slow. An executable's
// .preinit_array runs before every shared library's constructor: there we decide the core from
// CPUID and, when the variable is unset, re-execute the program with it set, so it is in place
// when OpenBLAS initialises. A value already in the environment wins.
#define _GNU_SOURCE
#include "CPUDetection.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xmmintrin.h>

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

unsigned int onnx_serve_flush_denormals(void) {
    unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040); // FTZ (bit 15) | DAZ (bit 6)
    return saved;
}

void onnx_serve_restore_floating_point_control(unsigned int saved) { _mm_setcsr(saved); }

/// The value of `name` in a NULL-terminated "NAME=value" array, or NULL.
static const char *find_variable(char **envp, const char *name) {
    size_t length = strlen(name);
    for (char **entry = envp; entry != NULL && *entry != NULL; entry++) {
        if (strncmp(*entry, name, length) == 0 && (*entry)[length] == '=') return *entry + length + 1;
    }
    return NULL;
}

/// Marks a process we re-executed with a core of our choosing (so it can say so).
#define CHOSEN_MARKER "ONNX_SERVE_OPENBLAS_CORETYPE_CHOSEN"

/// 1 if the CPU has what code compiled for `-target-cpu haswell` uses (AVX2, FMA, BMI1/2, F16C).
int onnx_serve_cpu_runs_haswell_code(void) {
    __builtin_cpu_init();
    return onnx_serve_cpu_has_avx2() && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
        && __builtin_cpu_supports("f16c");
}

static void onnx_serve_choose_coretype(int argc, char **argv, char **envp) {
    (void)argc;
#ifdef ONNX_SERVE_REQUIRES_HASWELL
    // The engine's loops were compiled for Haswell-level x86-64 (see Package.swift): on an older
    // CPU they would die of an illegal instruction somewhere in the first inference. Say so now.
    if (!onnx_serve_cpu_runs_haswell_code()) {
        static const char message[] = "onnx-serve: this build needs a CPU with AVX2, FMA and BMI2 "
            "(x86-64-v3); rebuild with ONNX_SERVE_PORTABLE=1 swift build -c release\n";
        ssize_t written = write(2, message, sizeof message - 1);
        (void)written;
        _exit(1);
    }
#endif
    // During pre-init libc has not set up `environ` yet (getenv sees nothing and setenv's changes
    // are discarded when libc initialises), so read `envp` directly and, to add a variable,
    // re-execute this program with it: the only way the value is in place when OpenBLAS's
    // constructor calls getenv.
    const char *set = find_variable(envp, "OPENBLAS_CORETYPE");
    if (set != NULL && set[0] != '\0') {
        origin = find_variable(envp, CHOSEN_MARKER) ? OnnxServeCoreTypeChosenFromCPU : OnnxServeCoreTypeFromEnvironment;
        return;
    }
    const char *chosen = onnx_serve_coretype_for_cpu();
    origin = OnnxServeCoreTypeLeftToOpenBLAS;
    if (chosen == NULL) return;

    size_t count = 0;
    while (envp != NULL && envp[count] != NULL) count++;
    char *environment[count + 4];
    for (size_t i = 0; i < count; i++) environment[i] = envp[i];
    char core[64];
    snprintf(core, sizeof core, "OPENBLAS_CORETYPE=%s", chosen);
    environment[count++] = core;
    environment[count++] = CHOSEN_MARKER "=1";
    // Our engine runs its own parallel loops and calls OpenBLAS single-threaded; without this,
    // OpenBLAS starts one idle server thread per core at load. A value set by the user wins.
    if (find_variable(envp, "OPENBLAS_NUM_THREADS") == NULL) environment[count++] = "OPENBLAS_NUM_THREADS=1";
    environment[count] = NULL;
    // Execute the file /proc/self/exe points to, not the link itself, so the process keeps its
    // name ("onnx-serve", not "exe") in ps, top and the journal.
    char path[4096];
    ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
    if (length <= 0) return;
    path[length] = '\0';
    execve(path, argv, environment);
    // exec failed (no /proc?): carry on with OpenBLAS's own detection.
}

__attribute__((section(".preinit_array"), used))
static void (*const onnx_serve_preinit)(int, char **, char **) = onnx_serve_choose_coretype;
