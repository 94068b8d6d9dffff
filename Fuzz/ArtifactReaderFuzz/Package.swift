// swift-tools-version: 6.1
// A libFuzzer target for the `.apus` reader, kept out of the main package so that library users
// never build it. Build and run it with scripts/fuzz-artifact.sh.
import PackageDescription

let package = Package(
    name: "ArtifactReaderFuzz",
    dependencies: [.package(name: "Apus", path: "../..")],
    targets: [
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "ArtifactReaderFuzz",
            dependencies: ["CFuzzerDriver", .product(name: "ApusGraph", package: "Apus")]
        ),
    ]
)
