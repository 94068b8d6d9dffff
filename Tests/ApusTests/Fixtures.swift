import Foundation
import Testing

/// Locations of generated fixtures, passed in by `scripts/test.sh` through the environment.
enum Fixtures {
    /// Folder of the model fixtures made by scripts/fixtures/models/make_models.py, if available.
    static let modelsDirectory: URL? = ProcessInfo.processInfo.environment["APUS_MODEL_FIXTURES"].map {
        URL(filePath: $0)
    }

    /// Folder of the README demo's assets (pretrained MobileNetV2, photos, PyTorch's top-5).
    static let demoDirectory: URL? = ProcessInfo.processInfo.environment["APUS_DEMO_DIR"].map { URL(filePath: $0) }

    /// Folder of `.apus` files written by the Python exporter (scripts/fixtures/artifacts/cached.sh).
    static let artifactsDirectory: URL? = ProcessInfo.processInfo.environment["APUS_ARTIFACT_FIXTURES"].map {
        URL(filePath: $0)
    }

    /// The README demo's artifact: pretrained MobileNetV2 exported by apus-export.
    static let demoArtifact: URL? = ProcessInfo.processInfo.environment["APUS_DEMO_ARTIFACT"].map { URL(filePath: $0) }

    /// Whether a missing fixture must fail the run (in CI) instead of skipping the test.
    static let required = ProcessInfo.processInfo.environment["CI"] != nil

    /// The model fixture names present (sub-folders with a model.onnx), sorted.
    static let modelNames: [String] = {
        guard let directory = modelsDirectory,
            let entries = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
        else { return [] }
        return entries.filter {
            FileManager.default.fileExists(atPath: directory.appending(path: "\($0)/model.onnx").path)
        }
        .sorted()
    }()
}
