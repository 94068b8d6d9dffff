import Apus
import Foundation
import Logging

/// One `.apus` file of the model directory: loaded and verified, or the reason it is not served.
public struct ServedModel: Sendable {
    /// The file name without `.apus`: the `{name}` in the URLs.
    public var name: String
    /// The file.
    public var url: URL
    /// The model, when it loaded and reproduced every golden example.
    public var model: Model?
    /// Why the model is not served.
    public var failure: String?
    /// Seconds from opening the file to verified.
    public var loadSeconds: Double
}

/// The models of the model directory, loaded once at start-up.
public enum ModelRepository {
    /// Loads every `*.apus` in `directory` with golden and checksum verification (`verify: .all`).
    /// A file that fails to load or verify is returned with its reason instead of a model.
    public static func load(
        directory: URL, threadsPerInference: Int, maxConcurrency: Int, logger: Logger
    ) -> [String: ServedModel] {
        let files: [URL]
        do {
            files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
                .filter { $0.pathExtension == "apus" }
                .sorted { $0.lastPathComponent < $1.lastPathComponent }
        } catch {
            logger.error(
                "cannot list the model directory", metadata: ["path": "\(directory.path)", "error": "\(error)"])
            return [:]
        }
        var models: [String: ServedModel] = [:]
        for file in files {
            let name = file.deletingPathExtension().lastPathComponent
            let start = ContinuousClock.now
            var served = ServedModel(name: name, url: file, model: nil, failure: nil, loadSeconds: 0)
            do {
                let options = Model.Options(
                    threadCount: threadsPerInference, maxConcurrentRuns: maxConcurrency, verify: .all)
                served.model = try Model(contentsOf: file, options: options)
            } catch {
                served.failure = error.description
            }
            let elapsed = ContinuousClock.now - start
            served.loadSeconds =
                Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            if let failure = served.failure {
                logger.error(
                    "model not served", metadata: ["model": "\(name)", "path": "\(file.path)", "reason": "\(failure)"])
            } else {
                logger.info(
                    "model loaded and verified",
                    metadata: [
                        "model": "\(name)", "goldens": "\(served.model?.goldens.count ?? 0)",
                        "seconds": "\(String(format: "%.3f", served.loadSeconds))",
                    ])
            }
            models[name] = served
        }
        return models
    }
}
