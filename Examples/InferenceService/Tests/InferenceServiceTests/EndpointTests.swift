import Foundation
import InferenceService
import Testing

@Suite("Open Inference Protocol endpoints over real HTTP", .serialized)
struct EndpointTests {
    @Test func healthAndMetadata() async throws {
        try await withServer { (server: RunningServer) async throws in
            #expect(try await server.send(.GET, "/v2/health/live").status == 200)
            let ready = try await server.send(.GET, "/v2/health/ready")
            #expect(ready.status == 200)
            #expect(ready.json["ready"] as? Bool == true)
            #expect(try await server.send(.GET, "/v2").json["name"] as? String == "apus-serve")

            let metadata = try await server.send(.GET, "/v2/models/tiny")
            #expect(metadata.status == 200)
            #expect(metadata.json["name"] as? String == "tiny")
            #expect(metadata.json["platform"] as? String == "apus")
            #expect(metadata.json["versions"] as? [String] == ["1"])
            let inputs = try #require(metadata.json["inputs"] as? [[String: Any]])
            #expect(inputs.count == 1)
            #expect(inputs.first?["name"] as? String == "x")
            #expect(inputs.first?["datatype"] as? String == "FP32")
            #expect(inputs.first?["shape"] as? [Int] == [-1, 4])
            let outputs = try #require(metadata.json["outputs"] as? [[String: Any]])
            #expect(outputs.first?["shape"] as? [Int] == [-1, 2])
            #expect(try await server.send(.GET, "/v2/models/tiny/ready").status == 200)
            #expect(try await server.send(.GET, "/v2/models/tiny/versions/1").status == 200)
        }
    }

    @Test func modelFailingVerificationIsNotServedAndSaysWhy() async throws {
        try await withServer { (server: RunningServer) async throws in
            let metadata = try await server.send(.GET, "/v2/models/broken")
            #expect(metadata.status == 200)
            #expect(metadata.json["state"] as? String == "UNAVAILABLE")
            let reason = try #require(metadata.json["reason"] as? String)
            #expect(reason.contains("golden"), "\(reason)")
            #expect(try await server.send(.GET, "/v2/models/broken/ready").status == 503)
            let infer = try await server.infer(
                "broken", #"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#)
            #expect(infer.status == 503)
            #expect(infer.body.contains("golden"))
            // The other models are served all the same.
            #expect(try await server.send(.GET, "/v2/health/ready").status == 200)
        }
    }

    @Test func unknownModelIs404() async throws {
        try await withServer { (server: RunningServer) async throws in
            let reply = try await server.send(.GET, "/v2/models/nope")
            #expect(reply.status == 404)
            #expect(reply.json["error"] as? String != nil)
            #expect(try await server.infer("nope", "{}").status == 404)
            #expect(try await server.send(.POST, "/v1/models/nope:classify", body: Data([1])).status == 404)
            #expect(try await server.send(.GET, "/v2/models/nope/ready").status == 404)
        }
    }

    @Test func inferFlatAndNestedData() async throws {
        try await withServer { (server: RunningServer) async throws in
            // y = x · W, W = [[1, 0], [0, 1], [1, 1], [2, -1]] (see Fixtures.tinyGraph).
            let flat = try await server.infer(
                "tiny",
                #"{"id": "req-7", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 0, 0, 0, 0.5]}]}"#
            )
            #expect(flat.status == 200, "\(flat.body)")
            #expect(flat.json["model_name"] as? String == "tiny")
            #expect(flat.json["id"] as? String == "req-7")
            let output = try #require((flat.json["outputs"] as? [[String: Any]])?.first)
            #expect(output["name"] as? String == "y")
            #expect(output["datatype"] as? String == "FP32")
            #expect(output["shape"] as? [Int] == [2, 2])
            #expect(output["data"] as? [Double] == [12, 1, 1, -0.5])

            let nested = try await server.infer(
                "tiny",
                #"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}], "outputs": [{"name": "y"}], "parameters": {}}"#
            )
            #expect(nested.status == 200, "\(nested.body)")
            #expect((nested.json["outputs"] as? [[String: Any]])?.first?["data"] as? [Double] == [12, 1])
        }
    }

    @Test(arguments: [
        ("{\"inputs\": [", "malformed JSON"),
        (#"{"inputs": []}"#, "no inputs"),
        (#"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32"}]}"#, "'data' is missing"),
        (
            #"{"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]}"#,
            "does not match"
        ),
        (#"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]}"#, "holds 3 values"),
        (
            #"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]}"#,
            "does not match the model's FP32"
        ),
        (#"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}"#, "not supported"),
        (#"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, "a", 3, 4]}]}"#, "not a number"),
        (#"{"inputs": [{"name": "x", "shape": [1, -4], "datatype": "FP32", "data": []}]}"#, "negative"),
        (#"{"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, "no input 'z'"),
        (
            #"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "q"}]}"#,
            "no output 'q'"
        ),
        (#"{"inputs": [{"shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, "missing field 'name'"),
        (
            #"{"inputs": [{"name": "x", "shape": [4611686018427387904, 4], "datatype": "FP32", "data": []}]}"#,
            "overflows"
        ),
        ("{\"inputs\": " + String(repeating: "[", count: 100_000), "nested deeper"),
    ])
    func badInferRequestsAre400(body: String, expected: String) async throws {
        try await Self.server.run { (server: RunningServer) async throws in
            let reply = try await server.infer("tiny", body)
            #expect(reply.status == 400, "\(reply.body)")
            let message = try #require(reply.json["error"] as? String, "\(reply.body)")
            #expect(message.contains(expected), "\(message)")
        }
    }

    @Test func classifyAnImage() async throws {
        try await withServer { (server: RunningServer) async throws in
            let red = Fixtures.png(width: 16, height: 12, rgb: (250, 10, 20))
            let reply = try await server.send(
                .POST, "/v1/models/colours:classify?top=2", body: red, contentType: "image/png")
            #expect(reply.status == 200, "\(reply.body)")
            let predictions = try #require(reply.json["predictions"] as? [[String: Any]])
            #expect(predictions.count == 2)
            #expect(predictions.first?["label"] as? String == "red")
            // softmax of the channel means (250/255, 20/255, 10/255 after an exact resize of a flat image).
            let logits = [250.0 / 255, 10.0 / 255, 20.0 / 255]
            let sum = logits.map { Foundation.exp($0) }.reduce(0, +)
            let expected = Foundation.exp(logits[0]) / sum
            let probability = try #require(predictions.first?["probability"] as? Double)
            #expect(abs(probability - expected) < 1e-4, "\(probability) vs \(expected)")
            #expect(predictions.last?["label"] as? String == "blue")

            let undecodable = try await server.send(
                .POST, "/v1/models/colours:classify", body: Data("GIF89a not an image".utf8), contentType: "image/png")
            #expect(undecodable.status == 400)
            #expect((undecodable.json["error"] as? String)?.isEmpty == false)
            let truncated = try await server.send(
                .POST, "/v1/models/colours:classify", body: red.prefix(40), contentType: "image/png")
            #expect(truncated.status == 400, "\(truncated.body)")
            #expect(try await server.send(.POST, "/v1/models/colours:classify?top=0", body: red).status == 400)
            #expect(try await server.send(.POST, "/v1/models/colours:classify", body: Data()).status == 400)
            let wrongType = try await server.send(
                .POST, "/v1/models/colours:classify", body: red, contentType: "text/plain")
            #expect(wrongType.status == 415)
            let noPreprocessing = try await server.send(
                .POST, "/v1/models/tiny:classify", body: red, contentType: "image/png")
            #expect(noPreprocessing.status == 400)
            #expect(noPreprocessing.body.contains("preprocessing"))
        }
    }

    @Test func bodyOverTheLimitIs413() async throws {
        try await withServer({ $0.bodyLimit = 1024 }) { (server: RunningServer) async throws in
            let big = Data(repeating: 0x20, count: 4096)
            #expect(try await server.send(.POST, "/v2/models/tiny/infer", body: big).status == 413)
            #expect(
                try await server.send(.POST, "/v1/models/colours:classify", body: big, contentType: "image/png").status
                    == 413)
            // The server is still healthy afterwards.
            #expect(try await server.send(.GET, "/v2/health/live").status == 200)
        }
    }

    @Test func metricsInPrometheusFormat() async throws {
        try await withServer { (server: RunningServer) async throws in
            _ = try await server.infer(
                "tiny", #"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#)
            _ = try await server.send(
                .POST, "/v1/models/colours:classify", body: Fixtures.png(width: 8, height: 8, rgb: (0, 0, 255)),
                contentType: "image/png")
            _ = try await server.send(.GET, "/v2/models/nope")
            let reply = try await server.send(.GET, "/metrics")
            #expect(reply.status == 200)
            #expect(reply.headers["Content-Type"].first?.hasPrefix("text/plain") == true)
            let text = reply.body
            for expected in [
                #"apus_http_requests_total{route="/v2/models/{name}/infer",method="POST",status="200"} 1"#,
                #"apus_http_requests_total{route="/v2/models/{name}",method="GET",status="404"} 1"#,
                "# TYPE apus_http_request_duration_seconds histogram",
                #"apus_inference_duration_seconds_count{model="tiny"} 1"#,
                #"apus_preprocess_duration_seconds_count{model="colours"} 1"#,
                "apus_queue_depth", "apus_inferences_running",
            ] {
                #expect(text.contains(expected), "missing \(expected) in\n\(text)")
            }
        }
    }

    /// One server shared by the parameterized cases.
    actor Shared {
        var server: RunningServer?
        func run(_ body: (RunningServer) async throws -> Void) async throws {
            if server == nil { server = try await RunningServer.start() }
            try await body(server!)
        }
    }
    static let server = Shared()
}
