// swift-tools-version: 6.1
// A libFuzzer target for JPEG/PNG decoding and the classification preprocessing that follows it,
// kept out of the main package so that library users never build it. Build and run it with
// scripts/fuzz-image.sh.
import PackageDescription

let package = Package(
    name: "ImageDecoderFuzz",
    dependencies: [.package(name: "Apus", path: "../..")],
    targets: [
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "ImageDecoderFuzz",
            dependencies: ["CFuzzerDriver", .product(name: "ApusPreprocess", package: "Apus")]
        ),
    ]
)
