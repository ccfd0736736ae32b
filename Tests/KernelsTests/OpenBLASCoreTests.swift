import Foundation
import Kernels
import Testing

@Suite struct OpenBLASCoreTests {
    /// Debian's DYNAMIC_ARCH OpenBLAS can fall back to its "Prescott" kernel on AVX-512 CPUs, about
    /// ten times too slow; the pre-init hook must have steered this process to the right core.
    @Test(.enabled(if: BLAS.cpuHasAVX2, "needs an AVX2-or-better CPU"))
    func processIsNotOnThePrescottKernel() {
        #expect(BLAS.coreName != "Prescott", "OpenBLAS core is \(BLAS.coreName) (\(BLAS.coreOrigin))")
    }

    /// The "OpenBLAS core: NAME (ORIGIN)" line of a fresh process (`kernel-bench --core`, built
    /// beside this test bundle) whose environment is ours with OPENBLAS_CORETYPE set to `core`
    /// (removed when nil). The choice happens when OpenBLAS loads, so only a new process shows it.
    /// (This test process was itself re-executed by the pre-init hook, which marks its environment
    /// as chosen by it; the child starts without that mark, as a process a user starts does.)
    static func coreLine(openBLASCoreType core: String?) throws -> (name: String, origin: String) {
        let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let process = Process()
        process.executableURL = directory.appendingPathComponent("kernel-bench")
        process.arguments = ["--core"]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = core
        environment["ONNX_SERVE_OPENBLAS_CORETYPE_CHOSEN"] = nil
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("OpenBLAS core: ") }, "no core line in \(text)")
        let rest = line.dropFirst("OpenBLAS core: ".count)
        let open = try #require(rest.firstIndex(of: "("))
        return (String(rest[..<open]).trimmingCharacters(in: .whitespaces), String(rest[rest.index(after: open)...].dropLast()))
    }

    @Test(.enabled(if: BLAS.cpuHasAVX2, "needs an AVX2-or-better CPU"))
    func withoutTheVariableTheCoreIsChosenFromTheCPU() throws {
        let preferred = try #require(BLAS.preferredCoreName, "no core known for this AVX2 CPU")
        let (name, origin) = try Self.coreLine(openBLASCoreType: nil)
        #expect(origin == "chosen from CPUID before OpenBLAS loaded")
        #expect(name.lowercased() == preferred.lowercased())
        #expect(name != "Prescott")
    }

    @Test(.enabled(if: BLAS.cpuHasAVX2, "needs an AVX2-or-better CPU"))
    func theEnvironmentsChoiceWins() throws {
        let (name, origin) = try Self.coreLine(openBLASCoreType: "Haswell")
        #expect(origin == "OPENBLAS_CORETYPE from the environment")
        #expect(name == "Haswell")
    }
}
