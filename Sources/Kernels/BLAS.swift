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
