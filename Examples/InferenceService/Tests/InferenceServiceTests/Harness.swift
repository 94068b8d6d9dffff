import AsyncHTTPClient
import Foundation
import InferenceService
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Testing

/// A real server on an ephemeral loopback port, in this process.
final class RunningServer: Sendable {
    let server: InferenceServer
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let port: Int
    let directory: URL

    static func start(_ configure: (inout ServiceConfiguration) -> Void = { _ in }) async throws -> RunningServer {
        let directory = try Fixtures.modelDirectory()
        var configuration = ServiceConfiguration(modelDirectory: directory, host: "127.0.0.1", port: 0)
        configure(&configuration)
        var logger = Logger(label: "apus-serve-test")
        logger.logLevel = .critical
        let server = InferenceServer(configuration: configuration, logger: logger)
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let group = server.makeServiceGroup(signals: []) { port in continuation.yield(port) }
        let task = Task { try await group.run() }
        var port = -1
        for await value in stream {
            port = value
            break
        }
        // Readiness comes once every model is loaded and verified.
        let deadline = ContinuousClock.now + .seconds(60)
        while server.state.phase != .ready, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return RunningServer(server: server, group: group, task: task, port: port, directory: directory)
    }

    private init(server: InferenceServer, group: ServiceGroup, task: Task<Void, any Error>, port: Int, directory: URL) {
        self.server = server
        self.group = group
        self.task = task
        self.port = port
        self.directory = directory
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        try? FileManager.default.removeItem(at: directory)
    }

    func send(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String? = nil,
        headers extra: [(String, String)] = []
    ) async throws -> Reply {
        try await Reply.send(
            method, "http://127.0.0.1:\(port)\(path)", body: body, contentType: contentType, headers: extra)
    }

    func infer(_ model: String, _ json: String) async throws -> Reply {
        try await send(.POST, "/v2/models/\(model)/infer", body: Data(json.utf8), contentType: "application/json")
    }
}

/// One HTTP answer.
struct Reply: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: String
    var seconds: Double

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }

    static func send(
        _ method: HTTPMethod, _ url: String, body: Data? = nil, contentType: String? = nil,
        headers extra: [(String, String)] = []
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let start = ContinuousClock.now
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let elapsed = ContinuousClock.now - start
        return Reply(
            status: Int(response.status.code), headers: response.headers, body: String(buffer: bytes),
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}

/// Runs `body` against a fresh server and stops it afterwards, also when `body` throws.
func withServer(
    _ configure: (inout ServiceConfiguration) -> Void = { _ in }, _ body: (RunningServer) async throws -> Void
) async throws {
    let server = try await RunningServer.start(configure)
    do {
        try await body(server)
    } catch {
        try await server.stop()
        throw error
    }
    try await server.stop()
}
