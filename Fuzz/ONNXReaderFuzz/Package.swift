// swift-tools-version: 6.1
// A libFuzzer target for the ONNX reader (and, for models that parse, graph validation, planning
// and one small run), kept out of the main package so that library users never build it. Build and
// run it with scripts/fuzz-onnx.sh.
import PackageDescription

let package = Package(
    name: "ONNXReaderFuzz",
    dependencies: [.package(name: "Apus", path: "../..")],
    targets: [
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "ONNXReaderFuzz",
            dependencies: ["CFuzzerDriver", .product(name: "ApusGraph", package: "Apus")]
        ),
    ]
)
