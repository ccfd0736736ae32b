import Kernels
import Testing

@Suite struct OpenBLASCoreTests {
    /// Debian's DYNAMIC_ARCH OpenBLAS can fall back to its "Prescott" kernel on AVX-512 CPUs, about
    /// ten times too slow; the pre-init hook must have steered this process to the right core.
    @Test(.enabled(if: BLAS.cpuHasAVX2, "needs an AVX2-or-better CPU"))
    func processIsNotOnThePrescottKernel() {
        #expect(BLAS.coreName != "Prescott", "OpenBLAS core is \(BLAS.coreName) (\(BLAS.coreOrigin))")
    }

    @Test(.enabled(if: BLAS.cpuHasAVX2, "needs an AVX2-or-better CPU"))
    func coreMatchesTheCPUUnlessTheEnvironmentChoseIt() {
        guard BLAS.coreOrigin.contains("chosen from CPUID"), let preferred = BLAS.preferredCoreName else { return }
        #expect(BLAS.coreName.lowercased() == preferred.lowercased())
    }
}
