internal import COpenBLAS
internal import CPUDetection

/// The one door to OpenBLAS: single-precision matrix multiply and what the library reports.
///
/// Every call runs single-threaded inside the caller's thread; parallel callers split the work
/// themselves (see `Gemm`), so OpenBLAS's own thread pool never competes with ours.
public enum BLAS {
    /// Row-major `C = alpha · op(A) · op(B) + beta · C` where op(A) is M×K and op(B) is K×N.
    ///
    /// Shapes: A is M×K (K×M if `transposeA`) with row stride `lda`; B is K×N (N×K if
    /// `transposeB`) with row stride `ldb`; C is M×N with row stride `ldc`.
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        initialize
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// Multiply-adds (m·n·k) up to which the core in use runs a product in OpenBLAS's small-matrix
    /// kernel, or 0 when it has none. The SkylakeX-family cores have one for products of at most
    /// 100³: it reads A and B in place (no packing) and writes C with beta in the same pass (no
    /// separate clearing of C). On this Zen 4 machine (`kernel-bench pointwise`, one thread, warm
    /// caches) it ran MobileNetV2's 16→96 1×1 layer at 112×112 as 24 products of 640 columns in
    /// 0.46 ms instead of 0.56 ms as one, 32→16 at 112×112 in 0.13 instead of 0.19 ms, the 3×3
    /// stride-2 stem in 0.29 instead of 0.36 ms, and 320→1280 at 7×7 as products of 48 rows in 0.37
    /// instead of 0.44 ms; with OPENBLAS_CORETYPE=Haswell the same cuts gained nothing.
    public static let smallKernelWork: Int = ["SkylakeX", "Cooperlake", "SapphireRapids"].contains(coreName) ? 1_000_000 : 0

    /// The OpenBLAS kernel in use ("SkylakeX", "Haswell", "Prescott", ...).
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build description (version, DYNAMIC_ARCH, threading).
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// How the core was chosen: from the environment, by our pre-init hook from CPUID, or by OpenBLAS.
    public static var coreOrigin: String {
        switch onnx_serve_coretype_origin() {
        case OnnxServeCoreTypeChosenFromCPU: "chosen from CPUID before OpenBLAS loaded"
        case OnnxServeCoreTypeLeftToOpenBLAS: "detected by OpenBLAS"
        default: "OPENBLAS_CORETYPE from the environment"
        }
    }

    /// The core our pre-init hook picks for this CPU, if any.
    public static var preferredCoreName: String? {
        onnx_serve_coretype_for_cpu().map { String(cString: $0) }
    }

    /// True when the CPU has AVX2 and FMA.
    public static var cpuHasAVX2: Bool { onnx_serve_cpu_has_avx2() != 0 }

    /// True when the CPU has AVX-512 (F, BW, DQ, VL).
    public static var cpuHasAVX512: Bool { onnx_serve_cpu_has_avx512() != 0 }

    /// OpenBLAS runs one thread per call; our `Parallelism` owns the cores.
    private static let initialize: Void = openblas_set_num_threads(1)
}
