// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Apus",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Apus", targets: ["Apus"]),
        .library(name: "ApusTensor", targets: ["ApusTensor"]),
        .library(name: "ApusOps", targets: ["ApusOps"]),
        .library(name: "ApusGraph", targets: ["ApusGraph"]),
        .library(name: "ApusPreprocess", targets: ["ApusPreprocess"]),
        .executable(name: "apus", targets: ["apus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        // OpenBLAS's C interface. Header only: the library itself is loaded at run time by
        // `BLAS` (ApusOps), after the right CPU core type has been chosen.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "CApusSupport", path: "Sources/CApusSupport"),
        // The AVX-512 GEMM kernel with weights packed once per plan, picked at run time.
        .target(name: "CApusKernels", path: "Sources/CApusKernels"),
        .target(name: "ApusTensor"),
        .target(name: "ApusOps", dependencies: ["ApusTensor", "CBLAS", "CApusSupport", "CApusKernels"]),
        .target(name: "ApusGraph", dependencies: ["ApusTensor", "ApusOps", "CApusSupport"]),
        // libjpeg/libpng report errors by longjmp; this C target keeps that inside C.
        .target(
            name: "CApusCodecs", dependencies: ["CJPEG", "CPNG"], path: "Sources/CApusCodecs",
            // The C sources include the headers directly (not via the module maps), so link explicitly.
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),
        .target(name: "ApusPreprocess", dependencies: ["ApusTensor", "CApusCodecs"]),
        .target(name: "Apus", dependencies: ["ApusTensor", "ApusOps", "ApusGraph", "ApusPreprocess", "CApusSupport"]),
        .executableTarget(
            name: "apus",
            dependencies: ["Apus", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "ApusTensorTests", dependencies: ["ApusTensor"]),
        .testTarget(name: "ApusOpsTests", dependencies: ["ApusOps"]),
        .testTarget(name: "ApusGraphTests", dependencies: ["ApusGraph"]),
        .testTarget(name: "ApusPreprocessTests", dependencies: ["ApusPreprocess"]),
        .testTarget(name: "ApusTests", dependencies: ["Apus"]),
    ]
)
