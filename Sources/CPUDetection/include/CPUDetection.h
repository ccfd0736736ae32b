#ifndef ONNX_SERVE_CPU_DETECTION_H
#define ONNX_SERVE_CPU_DETECTION_H

/// How OPENBLAS_CORETYPE came to be what it is in this process.
typedef enum {
    /// The environment set it before the process started; we left it alone.
    OnnxServeCoreTypeFromEnvironment = 0,
    /// Unset at start; the pre-init hook chose it from CPUID.
    OnnxServeCoreTypeChosenFromCPU = 1,
    /// Unset at start and the CPU has no AVX2: OpenBLAS detects the core itself.
    OnnxServeCoreTypeLeftToOpenBLAS = 2,
} OnnxServeCoreTypeOrigin;

/// The origin recorded by the pre-init hook (runs before any shared library's constructors).
OnnxServeCoreTypeOrigin onnx_serve_coretype_origin(void);

/// The OPENBLAS_CORETYPE value the hook would choose for this CPU ("SkylakeX", "Haswell"), or NULL.
const char *onnx_serve_coretype_for_cpu(void);

/// 1 if the CPU supports AVX2 and FMA, else 0.
int onnx_serve_cpu_has_avx2(void);
/// 1 if the CPU has what code compiled for Haswell-level x86-64 uses (AVX2, FMA, BMI1/2, F16C).
int onnx_serve_cpu_runs_haswell_code(void);
/// 1 if the CPU supports AVX-512 F, BW, DQ and VL, else 0.
int onnx_serve_cpu_has_avx512(void);

/// CPUs this process may run on (its affinity mask), at least 1.
int onnx_serve_available_cores(void);

/// Sets the calling thread's SSE control register to flush denormal results to zero and treat
/// denormal inputs as zero (FTZ and DAZ); returns the previous register value for
/// `onnx_serve_restore_floating_point_control`.
unsigned int onnx_serve_flush_denormals(void);
/// Restores the calling thread's SSE control register.
void onnx_serve_restore_floating_point_control(unsigned int saved);

/// A hint to the CPU that the calling thread is spinning on a memory location (x86 `pause`):
/// saves power and lets the sibling hyper-thread run.
static inline void onnx_serve_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
