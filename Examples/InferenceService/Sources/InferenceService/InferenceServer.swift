import Apus
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// Whether the server is loading, serving or draining, and the models it serves.
public final class ServerState: @unchecked Sendable {
    /// Life-cycle phase; readiness is true only in `.ready`.
    public enum Phase: String, Sendable {
        case loading, ready, draining
    }

    private let lock = NSLock()
    private var _phase: Phase = .loading
    private var _models: [String: ServedModel] = [:]
    private var _port: Int?

    public init() {}

    public var phase: Phase {
        lock.lock()
        defer { lock.unlock() }
        return _phase
    }

    public var models: [String: ServedModel] {
        lock.lock()
        defer { lock.unlock() }
        return _models
    }

    /// The port the listener is bound to, once it is.
    public var port: Int? {
        lock.lock()
        defer { lock.unlock() }
        return _port
    }

    func setPort(_ port: Int?) {
        lock.lock()
        _port = port
        lock.unlock()
    }

    func finishLoading(_ models: [String: ServedModel]) {
        lock.lock()
        _models = models
        if _phase == .loading { _phase = .ready }
        lock.unlock()
    }

    func startDraining() {
        lock.lock()
        _phase = .draining
        lock.unlock()
    }
}

/// The HTTP inference service: Open Inference Protocol v2 REST endpoints, image classification,
/// Prometheus metrics, load shedding and graceful shutdown.
///
/// ```swift
/// let server = InferenceServer(configuration: .init(modelDirectory: models), logger: logger)
/// try await server.run()   // until SIGTERM or SIGINT
/// ```
public struct InferenceServer: Sendable {
    public let configuration: ServiceConfiguration
    public let state: ServerState
    public let metrics: ServiceMetrics
    let pool: InferencePool
    let logger: Logger

    public init(configuration: ServiceConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let metrics = ServiceMetrics()
        self.metrics = metrics
        self.state = ServerState()
        self.pool = InferencePool(
            maxConcurrency: configuration.maxConcurrency, queueLength: configuration.queueLength,
            onChange: { waiting, running in metrics.poolChanged(waiting: waiting, running: running) })
    }

    /// Serves until SIGTERM or SIGINT, then drains: readiness answers 503, the listener closes,
    /// in-flight requests finish, and this returns.
    public func run() async throws {
        try await makeServiceGroup(signals: [.sigterm, .sigint]).run()
    }

    /// The HTTP application and the model loader as one service group; `onServerRunning` gets
    /// the bound port.
    public func makeServiceGroup(
        signals: [UnixSignal], onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> ServiceGroup {
        let application = makeApplication(onServerRunning: onServerRunning)
        let loader = LoaderService(server: self)
        // Graceful shutdown runs in reverse order: the loader first (readiness → 503, drain
        // delay), then the application (stop accepting, finish in-flight requests).
        return ServiceGroup(
            configuration: .init(services: [application, loader], gracefulShutdownSignals: signals, logger: logger))
    }

    /// The Hummingbird application with every route.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let router = Router()
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        addRoutes(to: router)
        let state = self.state
        let logger = self.logger
        let host = configuration.host
        return Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(configuration.headerTimeout.nanoseconds))),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "apus-serve"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port
                state.setPort(port)
                logger.info("listening", metadata: ["host": "\(host)", "port": "\(port ?? -1)"])
                await onServerRunning(port ?? -1)
            },
            logger: logger)
    }

    /// Loads the models at start-up and turns readiness off at shutdown.
    struct LoaderService: Service {
        let server: InferenceServer

        func run() async throws {
            let configuration = server.configuration
            let logger = server.logger
            let models = await withCheckedContinuation { continuation in
                // Loading verifies goldens: seconds of CPU, kept off the concurrency pool.
                let thread = Thread {
                    continuation.resume(
                        returning: ModelRepository.load(
                            directory: configuration.modelDirectory,
                            threadsPerInference: configuration.threadsPerInference,
                            maxConcurrency: configuration.maxConcurrency, logger: logger))
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
            server.state.finishLoading(models)
            let served = models.values.filter { $0.model != nil }.map(\.name).sorted()
            logger.info("ready", metadata: ["models": "\(served.joined(separator: ", "))"])
            try? await gracefulShutdown()
            server.state.startDraining()
            logger.info("draining: readiness is now 503")
            if configuration.drainDelay > .zero {
                try? await Task.sleep(for: configuration.drainDelay)
            }
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Counts every answer by route and status and times it.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServiceMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let start = ContinuousClock.now
        let method = request.method.rawValue
        do {
            let response = try await next(request, context)
            metrics.request(
                route: context.endpointPath ?? "unmatched", method: method, status: response.status.code,
                duration: ContinuousClock.now - start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.request(
                route: context.endpointPath ?? "unmatched", method: method, status: status,
                duration: ContinuousClock.now - start)
            throw error
        }
    }
}
