import Foundation
import InferenceService
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Overload, deadlines, slow clients and SIGTERM", .serialized)
struct ReliabilityTests {
    static let slowRequest = #"{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}"#

    @Test func fullQueueAnswers503AtOnceWithRetryAfter() async throws {
        try await withServer({
            $0.maxConcurrency = 1
            $0.queueLength = 1
            $0.retryAfterSeconds = 2
        }) { (server: RunningServer) async throws in
            let single = try await server.infer("slow", Self.slowRequest)
            #expect(single.status == 200, "\(single.body)")
            let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                for _ in 0..<8 { group.addTask { try await server.infer("slow", Self.slowRequest) } }
                // Liveness and readiness do not wait for the busy pool.
                let live = try await server.send(.GET, "/v2/health/live")
                #expect(live.status == 200)
                #expect(live.seconds < single.seconds + 0.5)
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let accepted = replies.filter { $0.status == 200 }
            let shed = replies.filter { $0.status == 503 }
            #expect(accepted.count >= 2, "\(replies.map(\.status))")
            #expect(shed.count >= 1, "\(replies.map(\.status))")
            #expect(accepted.count + shed.count == replies.count, "\(replies.map(\.status))")
            for reply in shed {
                #expect(reply.headers["Retry-After"].first == "2")
                #expect((reply.json["error"] as? String)?.contains("overloaded") == true)
                // Shedding answers without waiting for an inference (one inference took `single.seconds`).
                #expect(reply.seconds < max(0.1, single.seconds / 2), "503 took \(reply.seconds) s")
            }
            let metrics = try await server.send(.GET, "/metrics").body
            #expect(metrics.contains("apus_requests_shed_total \(shed.count)"), "\(metrics)")
        }
    }

    @Test func pastTheDeadlineIs504() async throws {
        try await withServer({
            $0.maxConcurrency = 1
            $0.queueLength = 4
            $0.requestDeadline = .milliseconds(1)
        }) { (server: RunningServer) async throws in
            let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                for _ in 0..<3 { group.addTask { try await server.infer("slow", Self.slowRequest) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for reply in replies {
                #expect(reply.status == 504, "\(reply.body)")
                #expect((reply.json["error"] as? String)?.contains("deadline") == true)
            }
        }
    }

    @Test func slowClientSendingHeadersIsDisconnected() async throws {
        try await withServer({ $0.headerTimeout = .milliseconds(300) }) { (server: RunningServer) async throws in
            let socket = try connect(port: server.port)
            defer { close(socket) }
            let start = ContinuousClock.now
            // Half a request header, then a byte now and then, never finishing.
            #expect(write(socket, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n", 38) == 38)
            var closed = false
            for _ in 0..<40 {
                try await Task.sleep(for: .milliseconds(100))
                if Glibc.send(socket, "X", 1, Int32(MSG_NOSIGNAL)) < 0 {
                    closed = true
                    break
                }
                var buffer = [UInt8](repeating: 0, count: 64)
                if recv(socket, &buffer, 64, Int32(MSG_DONTWAIT)) == 0 {
                    closed = true
                    break
                }
            }
            let elapsed = ContinuousClock.now - start
            #expect(closed, "the connection was still open after \(elapsed)")
            #expect(elapsed < .seconds(3))
            #expect(try await server.send(.GET, "/v2/health/live").status == 200)
        }
    }

    /// SIGTERM mid-request: the in-flight request completes, readiness was 503 meanwhile
    /// (drain delay), and the process exits 0.
    @Test func sigtermDrainsAndExitsZero() async throws {
        let executable = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appending(path: ".build/debug/apus-serve")
        try #require(
            FileManager.default.isExecutableFile(atPath: executable.path),
            "build the server first: swift build (looked for \(executable.path))")
        let directory = try Fixtures.modelDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = executable
        process.arguments = [
            "--model-dir", directory.path, "--port", "0", "--max-concurrency", "1", "--drain-delay", "0.3",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var log = ""
        var port: Int?
        let handle = errors.fileHandleForReading
        let readDeadline = ContinuousClock.now + .seconds(60)
        while port == nil, ContinuousClock.now < readDeadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            log += String(decoding: chunk, as: UTF8.self)
            if let range = log.range(of: #"port=(\d+)"#, options: .regularExpression) {
                port = Int(log[range].dropFirst(5))
            }
        }
        let bound = try #require(port, "no port in the log:\n\(log)")
        let base = "http://127.0.0.1:\(bound)"
        let readyDeadline = ContinuousClock.now + .seconds(60)
        while (try? await Reply.send(.GET, base + "/v2/health/ready"))?.status != 200,
            ContinuousClock.now < readyDeadline
        {
            try await Task.sleep(for: .milliseconds(20))
        }
        let timing = try await Reply.send(.POST, base + "/v2/models/slow/infer", body: Data(Self.slowRequest.utf8))
        #expect(timing.status == 200)

        async let inFlight = Reply.send(.POST, base + "/v2/models/slow/infer", body: Data(Self.slowRequest.utf8))
        try await Task.sleep(for: .milliseconds(30))
        kill(process.processIdentifier, SIGTERM)
        try await Task.sleep(for: .milliseconds(100))
        let duringDrain = try await Reply.send(.GET, base + "/v2/health/ready")
        #expect(duringDrain.status == 503)
        let reply = try await inFlight
        #expect(reply.status == 200, "\(reply.body)")
        #expect(reply.body.contains("\"outputs\""))

        let exitDeadline = ContinuousClock.now + .seconds(30)
        while process.isRunning, ContinuousClock.now < exitDeadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!process.isRunning)
        if !process.isRunning {
            #expect(process.terminationReason == .exit)
            #expect(process.terminationStatus == 0)
        } else {
            process.terminate()
        }
        // Nothing listens any more.
        #expect(throws: (any Error).self) { try connect(port: bound) }
    }
}

struct SocketError: Error {}

/// A blocking TCP connection to 127.0.0.1:port.
func connect(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SocketError() }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard result == 0 else {
        close(fd)
        throw SocketError()
    }
    return fd
}
