// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "ApusBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Apus", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Kernels",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ApusOps", package: "Apus"),
                .product(name: "ApusTensor", package: "Apus"),
            ],
            path: "Benchmarks/Kernels",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ModelRun",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Apus", package: "Apus"),
                .product(name: "ApusTensor", package: "Apus"),
            ],
            path: "Benchmarks/ModelRun",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
