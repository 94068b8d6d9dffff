import ArgumentParser
import Foundation
import InferenceService
import Logging

/// `apus-serve`: serves every `.apus` model of a folder over the Open Inference Protocol.
@main
struct ApusServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apus-serve",
        abstract:
            "Serve .apus models over HTTP (Open Inference Protocol v2, image classification, Prometheus metrics).",
        discussion: "Every option can also be set by the environment variable named in its help; a flag wins.")

    @Option(help: "Folder whose *.apus files are served (APUS_MODEL_DIR).")
    var modelDir: String?
    @Option(help: "Address to bind (APUS_HOST, default 127.0.0.1).")
    var host: String?
    @Option(help: "Port; 0 picks a free one (APUS_PORT, default 8080).")
    var port: Int?
    @Option(help: "Inferences running at once (APUS_MAX_CONCURRENCY, default usable CPUs / threads per inference).")
    var maxConcurrency: Int?
    @Option(help: "Requests that may wait for an inference thread; more get 503 (APUS_QUEUE_LENGTH, default 16).")
    var queueLength: Int?
    @Option(help: "Largest request body in bytes; larger get 413 (APUS_BODY_LIMIT, default 67108864).")
    var bodyLimit: Int?
    @Option(help: "Request deadline in seconds; past it 504 (APUS_REQUEST_DEADLINE, default 10).")
    var requestDeadline: Double?
    @Option(help: "Intra-op threads per inference (APUS_THREADS_PER_INFERENCE, default 1).")
    var threadsPerInference: Int?
    @Option(
        help: "Seconds a connection may take to send a request header or stay idle (APUS_HEADER_TIMEOUT, default 10).")
    var headerTimeout: Double?
    @Option(
        help: "Seconds readiness reports 503 after SIGTERM before the listener closes (APUS_DRAIN_DELAY, default 0).")
    var drainDelay: Double?
    @Option(help: "Log level: trace, debug, info, notice, warning, error (APUS_LOG_LEVEL, default info).")
    var logLevel: String?

    mutating func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        func value<T: LosslessStringConvertible>(_ flag: T?, _ name: String) throws -> T? {
            if let flag { return flag }
            guard let text = environment[name] else { return nil }
            guard let parsed = T(text) else { throw ValidationError("\(name)=\(text) is not a valid value") }
            return parsed
        }
        guard let directory = try value(modelDir, "APUS_MODEL_DIR") else {
            throw ValidationError("give the model folder with --model-dir or APUS_MODEL_DIR")
        }
        let level = try value(logLevel, "APUS_LOG_LEVEL") ?? "info"
        guard let parsedLevel = Logger.Level(rawValue: level) else {
            throw ValidationError("unknown log level '\(level)'")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsedLevel
            return handler
        }
        let threads = try value(threadsPerInference, "APUS_THREADS_PER_INFERENCE") ?? 1
        let configuration = ServiceConfiguration(
            modelDirectory: URL(filePath: directory), host: try value(host, "APUS_HOST") ?? "127.0.0.1",
            port: try value(port, "APUS_PORT") ?? 8080,
            maxConcurrency: try value(maxConcurrency, "APUS_MAX_CONCURRENCY"),
            queueLength: try value(queueLength, "APUS_QUEUE_LENGTH") ?? 16,
            bodyLimit: try value(bodyLimit, "APUS_BODY_LIMIT") ?? 64 << 20,
            requestDeadline: .milliseconds(Int64((try value(requestDeadline, "APUS_REQUEST_DEADLINE") ?? 10) * 1000)),
            threadsPerInference: threads,
            headerTimeout: .milliseconds(Int64((try value(headerTimeout, "APUS_HEADER_TIMEOUT") ?? 10) * 1000)),
            drainDelay: .milliseconds(Int64((try value(drainDelay, "APUS_DRAIN_DELAY") ?? 0) * 1000)))
        let logger = Logger(label: "apus-serve")
        logger.info(
            "starting",
            metadata: [
                "models": "\(directory)", "max_concurrency": "\(configuration.maxConcurrency)",
                "queue_length": "\(configuration.queueLength)", "threads_per_inference": "\(threads)",
            ])
        try await InferenceServer(configuration: configuration, logger: logger).run()
        logger.info("stopped")
    }
}
