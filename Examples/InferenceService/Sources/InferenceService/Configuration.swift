import Apus
import Foundation

/// Everything `apus-serve` can be told, by flag or environment variable.
///
/// The defaults follow docs/RELIABILITY.md: a bounded queue, a 64 MiB body limit, a request
/// deadline and a header read timeout against slow clients.
public struct ServiceConfiguration: Sendable {
    /// The folder whose `*.apus` files are served, one model per file named after the file.
    public var modelDirectory: URL
    /// Address to bind (`127.0.0.1`, `0.0.0.0`, …).
    public var host: String
    /// Port to bind; 0 picks a free port (reported by ``InferenceServer/boundPort``).
    public var port: Int
    /// Inferences that run at once on the dedicated pool (one OS thread each).
    public var maxConcurrency: Int
    /// Requests that may wait for a free inference thread; more are answered 503 at once.
    public var queueLength: Int
    /// Largest request body accepted, in bytes; larger ones get 413.
    public var bodyLimit: Int
    /// Time from the start of handling to the answer; past it the answer is 504.
    public var requestDeadline: Duration
    /// Intra-op threads of one inference.
    public var threadsPerInference: Int
    /// A connection that sends no complete request header within this time (and idle keep-alive
    /// connections) is closed: the guard against slowloris.
    public var headerTimeout: Duration
    /// Seconds the `Retry-After` header of a 503 suggests.
    public var retryAfterSeconds: Int
    /// After SIGTERM, readiness reports 503 for this long before the listener closes, so that load
    /// balancers stop sending new requests first.
    public var drainDelay: Duration

    /// Defaults sized to the CPUs this process may use.
    public init(
        modelDirectory: URL, host: String = "127.0.0.1", port: Int = 8080, maxConcurrency: Int? = nil,
        queueLength: Int = 16, bodyLimit: Int = 64 << 20, requestDeadline: Duration = .seconds(10),
        threadsPerInference: Int = 1, headerTimeout: Duration = .seconds(10), retryAfterSeconds: Int = 1,
        drainDelay: Duration = .zero
    ) {
        self.modelDirectory = modelDirectory
        self.host = host
        self.port = port
        let cpus = CPUAvailability.usableCPUCount()
        self.threadsPerInference = max(1, threadsPerInference)
        self.maxConcurrency = max(1, maxConcurrency ?? max(1, cpus / max(1, threadsPerInference)))
        self.queueLength = max(0, queueLength)
        self.bodyLimit = max(0, bodyLimit)
        self.requestDeadline = requestDeadline
        self.headerTimeout = headerTimeout
        self.retryAfterSeconds = max(0, retryAfterSeconds)
        self.drainDelay = drainDelay
    }
}
