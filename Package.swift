// swift-tools-version:6.2
import PackageDescription

/// Settings every target of ours shares (see DESIGN.md, "Habits").
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// On x86-64, the engine's own loops (Winograd transforms, im2col, epilogues, pooling, element
/// arithmetic) are compiled for Haswell-level x86-64 (AVX2, FMA, BMI2: every x86 server CPU since 2013):
/// 8-wide vectors instead of SSE2's 4. The pre-init hook in CPUDetection refuses, with one line,
/// to start on a CPU without them. `ONNX_SERVE_PORTABLE=1 swift build ...` builds for baseline
/// x86-64 instead. (The Swift compiler does not fuse multiply-adds without fast-math; where our
/// code asks for a fused one, the portable build computes the same value with a library call
/// (PanelProduct), except in the depthwise kernels, which multiply and add apart there for speed:
/// their results can differ in the last bits between the two builds.)
let portable = Context.environment["ONNX_SERVE_PORTABLE"].map { !$0.isEmpty && $0 != "0" } ?? false
#if arch(x86_64)
let vectorFlags: [String] = portable ? [] : ["-target-cpu", "haswell"]
#else
let vectorFlags: [String] = []
#endif

/// `ONNX_SERVE_FUZZ=1` (tools/fuzz.sh) declares the libFuzzer harnesses of Tests/Fuzz, which the
/// normal build never sees, and keeps overflow checks in the numeric modules, so that an overflow
/// reached from fuzzed data stops the fuzzer instead of going on with a wrong size.
let fuzzing = Context.environment["ONNX_SERVE_FUZZ"] == "1"

/// Numeric hot loops: no overflow traps in release builds, where they cost measurable time.
/// `ROUND_INSTRUCTION`: rounding to a whole number and a fused multiply-add are one instruction
/// each (not on baseline x86-64, where they are library calls: `QuantizationGrid.point`).
let kernelSettings: [SwiftSetting] = strictSettings + [
    .unsafeFlags((fuzzing ? [] : ["-Ounchecked"]) + vectorFlags, .when(configuration: .release)),
] + (portable ? [] : [.define("ROUND_INSTRUCTION", .when(configuration: .release))])

let package = Package(
    name: "onnx-serve",
    products: [
        .executable(name: "onnx-serve", targets: ["onnx-serve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // MARK: C libraries
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        /// libjpeg-turbo's TurboJPEG API (JPEG decoding for ImageDecoder; errors as return codes).
        .systemLibrary(
            name: "CTurboJPEG",
            pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"])]
        ),
        /// libpng's simplified API (PNG decoding for ImageDecoder; errors as return codes).
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]
        ),
        /// libwebp's simple decoding API (WebP decoding for ImageDecoder; errors as return values).
        .systemLibrary(
            name: "CWebP",
            pkgConfig: "libwebp",
            providers: [.apt(["libwebp-dev"])]
        ),
        /// stb_image (BMP and binary PNM decoding for ImageDecoder; errors as return values).
        .systemLibrary(
            name: "CSTBImage",
            pkgConfig: "stb",
            providers: [.apt(["libstb-dev"])]
        ),
        /// libtiff, opened on memory with per-file error handlers (TIFF decoding for ImageDecoder).
        .systemLibrary(
            name: "CTIFF",
            pkgConfig: "libtiff-4",
            providers: [.apt(["libtiff-dev"])]
        ),
        /// OpenJPEG (JPEG 2000 decoding for ImageDecoder; errors as return values and message callbacks).
        .systemLibrary(
            name: "COpenJPEG",
            pkgConfig: "libopenjp2",
            providers: [.apt(["libopenjp2-7-dev"])]
        ),
        /// CPU detection, and the OpenBLAS kernel choice made before OpenBLAS initialises (an ELF pre-init hook).
        .target(name: "CPUDetection", cSettings: vectorFlags.isEmpty ? [] : [
            .define("ONNX_SERVE_REQUIRES_HASWELL", .when(configuration: .release)),
        ]),

        // MARK: Engine
        .target(name: "Tensors", swiftSettings: strictSettings),
        .target(
            name: "Kernels",
            dependencies: ["Tensors", "COpenBLAS", "CPUDetection"],
            swiftSettings: kernelSettings
        ),
        .target(name: "Engine", dependencies: ["Tensors", "Kernels", "CTurboJPEG", "CPNG", "CWebP", "CSTBImage", "CTIFF", "COpenJPEG"], swiftSettings: kernelSettings),
        .target(
            name: "ONNX",
            dependencies: ["Tensors", "Engine", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["onnx.proto", "onnx-data.proto", "README.md"],
            swiftSettings: strictSettings
        ),

        // MARK: Serving
        .target(name: "HTTP", dependencies: ["CMicroHTTPD", "CZlib"], swiftSettings: strictSettings),

        .target(
            name: "Serving",
            dependencies: [
                "Engine", "ONNX", "Tensors", "Kernels",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),

        .target(
            name: "API",
            dependencies: ["HTTP", "Serving", "Tensors", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),

        // MARK: Executable
        .executableTarget(
            name: "onnx-serve",
            dependencies: [
                "Tensors", "Kernels", "Engine", "ONNX", "Serving", "HTTP", "API",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        /// Figures for the convolution kernels on real layer shapes (not a test).
        .executableTarget(name: "kernel-bench", dependencies: ["Kernels"], swiftSettings: strictSettings),

        // MARK: Benchmarks
        .executableTarget(name: "codec-bench", dependencies: ["API", "Serving", "Tensors"], path: "benchmarks/CodecBench",
                          swiftSettings: strictSettings),

        // MARK: Tests
        .target(name: "TestSupport", dependencies: ["Tensors"], path: "Tests/TestSupport", swiftSettings: strictSettings),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Tensors", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Kernels", "Tensors", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "CZlib"], swiftSettings: strictSettings),
        .testTarget(name: "ONNXTests", dependencies: ["ONNX", "Engine", "Tensors", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "APITests", dependencies: ["API", "HTTP", "Serving", "Engine", "Tensors", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Engine", "Tensors", "TestSupport"], swiftSettings: strictSettings),
    ]
)

// MARK: Fuzzing
/// The libFuzzer harnesses, one executable for every target (chosen by `ONNX_SERVE_FUZZ_TARGET`),
/// which gets its `main` from libFuzzer (`--sanitize fuzzer`). Built and run by tools/fuzz.sh.
if fuzzing {
    package.targets.append(.executableTarget(
        name: "FuzzHarnesses",
        dependencies: ["API", "HTTP", "ONNX", "Engine", "Serving", .product(name: "Logging", package: "swift-log")],
        path: "Tests/Fuzz/Harnesses",
        swiftSettings: strictSettings))
}
