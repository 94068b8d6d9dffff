import Apus
import Foundation
import Hummingbird
import NIOCore

extension InferenceServer {
    func addRoutes(to router: Router<BasicRequestContext>) {
        // Health and metadata read only the state: they never touch the inference pool, so they
        // answer at once even when every inference thread is busy.
        router.get("/v2/health/live") { _, _ in json("{\"live\": true}\n") }
        router.get("/v2/health/ready") { _, _ in
            let phase = state.phase
            return json(
                "{\"ready\": \(phase == .ready), \"state\": \"\(phase.rawValue)\"}\n",
                status: phase == .ready ? .ok : .serviceUnavailable)
        }
        router.get("/v2") { _, _ in
            json("{\"name\": \"apus-serve\", \"version\": \"1\", \"extensions\": []}\n")
        }
        router.get("/v2/models/{name}") { _, context in try metadata(try servedModel(context, requireModel: false)) }
        router.get("/v2/models/{name}/versions/{version}") { _, context in
            try metadata(try servedModel(context, requireModel: false))
        }
        router.get("/v2/models/{name}/ready") { _, context in try modelReady(context) }
        router.get("/v2/models/{name}/versions/{version}/ready") { _, context in try modelReady(context) }
        router.post("/v2/models/{name}/infer") { request, context in try await infer(request, context) }
        router.post("/v2/models/{name}/versions/{version}/infer") { request, context in
            try await infer(request, context)
        }
        router.post("/v1/models/{name}:classify") { request, context in try await classify(request, context) }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
    }

    /// The model named in the path; 404 when there is no such file, 503 while loading or when it
    /// failed verification (unless only its metadata is asked for).
    func servedModel(_ context: BasicRequestContext, requireModel: Bool = true) throws(ServiceError) -> ServedModel {
        let name: String
        do {
            name = try context.parameters.require("name")
        } catch {
            throw .badRequest("missing model name")
        }
        guard let served = state.models[name] else {
            if state.phase == .loading {
                throw ServiceError(
                    .serviceUnavailable, "models are still loading", retryAfter: configuration.retryAfterSeconds)
            }
            let known = state.models.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
            throw ServiceError(.notFound, "unknown model '\(name)'; served models: \(known)")
        }
        if requireModel, served.model == nil {
            throw ServiceError(
                .serviceUnavailable, "model '\(name)' is not served: \(served.failure ?? "it did not load")")
        }
        return served
    }

    func modelReady(_ context: BasicRequestContext) throws -> Response {
        let served = try servedModel(context, requireModel: false)
        let ready = served.model != nil && state.phase == .ready
        return json(
            "{\"name\": \(JSONText.string(served.name)), \"ready\": \(ready)}\n",
            status: ready ? .ok : .serviceUnavailable)
    }

    func metadata(_ served: ServedModel) throws -> Response {
        func tensors(_ infos: [ValueInfo], golden: [String: Tensor]) -> String {
            let entries = infos.map { info in
                let dtype = info.dtype ?? golden[info.name]?.dtype ?? .float32
                let shape =
                    info.dimensions?.map { dimension -> String in
                        if case .fixed(let size) = dimension { return String(size) }
                        return "-1"
                    } ?? []
                return "{\"name\": \(JSONText.string(info.name)), \"datatype\": \"\(OpenInference.datatype(dtype))\", "
                    + "\"shape\": [\(shape.joined(separator: ", "))]}"
            }
            return "[" + entries.joined(separator: ", ") + "]"
        }
        var text = "{\"name\": \(JSONText.string(served.name)), \"versions\": [\"1\"], \"platform\": \"apus\""
        if let model = served.model {
            text += ", \"inputs\": \(tensors(model.inputs, golden: model.goldens.first?.inputs ?? [:]))"
            text += ", \"outputs\": \(tensors(model.outputs, golden: model.goldens.first?.outputs ?? [:]))"
            text += ", \"state\": \"READY\""
            text +=
                ", \"parameters\": {\"golden_examples\": \(model.goldens.count), \"labels\": \(model.labels?.count ?? 0)"
            text += ", \"preprocessing\": \(model.preprocessing != nil), \"threads\": \(model.threadCount)"
            text += ", \"load_seconds\": \(String(format: "%.3f", served.loadSeconds))}"
        } else {
            text += ", \"inputs\": [], \"outputs\": [], \"state\": \"UNAVAILABLE\""
            text += ", \"reason\": \(JSONText.string(served.failure ?? "did not load"))"
        }
        return json(text + "}\n")
    }

    /// Reads the body, refusing more than the configured limit with 413.
    func collectBody(_ request: Request) async throws(ServiceError) -> ByteBuffer {
        let limit = configuration.bodyLimit
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw ServiceError(.contentTooLarge, "the body is \(length) bytes; the limit is \(limit)")
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw ServiceError(.contentTooLarge, "the body exceeds the limit of \(limit) bytes")
        } catch {
            throw .badRequest("cannot read the body: \(error)")
        }
    }

    /// Runs `body` on the inference pool within the request deadline, mapping the outcome to
    /// answers: 503 + Retry-After when the pool is full, 504 past the deadline.
    func onPool<T: Sendable>(
        deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () throws -> T
    ) async throws(ServiceError) -> T {
        do {
            return try await pool.run(deadline: deadline, body)
        } catch PoolRejection.overloaded {
            metrics.shed.increment()
            throw ServiceError(
                .serviceUnavailable,
                "overloaded: \(pool.maxConcurrency) inferences running and \(pool.queueLength) waiting",
                retryAfter: configuration.retryAfterSeconds)
        } catch PoolRejection.deadlineExceeded {
            throw ServiceError(
                .gatewayTimeout, "the request deadline of \(configuration.requestDeadline) passed before it finished")
        } catch let error as ServiceError {
            throw error
        } catch let error as ModelError {
            throw ServiceError.from(error)
        } catch {
            throw ServiceError(.internalServerError, "\(error)")
        }
    }

    func infer(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let deadline = ContinuousClock.now + configuration.requestDeadline
        let served = try servedModel(context)
        guard let model = served.model else { throw ServiceError(.serviceUnavailable, "model not loaded") }
        if request.headers.contains(where: { $0.name.canonicalName == "inference-header-content-length" }) {
            throw ServiceError.badRequest("the binary tensor data extension is not supported; send JSON data")
        }
        let body = try await collectBody(request)
        let data = Data(buffer: body, byteTransferStrategy: .noCopy)
        let metrics = self.metrics
        let name = served.name
        let text = try await onPool(deadline: deadline) { () throws -> String in
            let parsed = try OpenInference.parseRequest(data, model: model)
            let start = ContinuousClock.now
            let outputs = try model.run(parsed.inputs)
            metrics.inference(model: name, duration: ContinuousClock.now - start)
            let names = parsed.outputs ?? model.outputs.map(\.name)
            let selected = names.compactMap { name in outputs[name].map { (name, $0) } }
            return OpenInference.encodeResponse(model: name, id: parsed.id, outputs: selected)
        }
        return json(text)
    }

    static let imageTypes: Set<String> = ["image/jpeg", "image/png", "application/octet-stream"]

    func classify(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let deadline = ContinuousClock.now + configuration.requestDeadline
        let served = try servedModel(context)
        guard let model = served.model else { throw ServiceError(.serviceUnavailable, "model not loaded") }
        guard model.preprocessing != nil else {
            throw ServiceError.badRequest(
                "model '\(served.name)' has no preprocessing spec; send tensors to /v2/models/\(served.name)/infer")
        }
        if let type = request.headers[.contentType] {
            let mediaType =
                type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            guard Self.imageTypes.contains(mediaType) else {
                throw ServiceError(.unsupportedMediaType, "content type '\(type)' is not image/jpeg or image/png")
            }
        }
        var top = 5
        if let text = request.uri.queryParameters["top"] {
            guard let value = Int(String(text)), (1...1000).contains(value) else {
                throw ServiceError.badRequest("top=\(text) is not an integer in 1...1000")
            }
            top = value
        }
        let count = top
        let body = try await collectBody(request)
        guard body.readableBytes > 0 else { throw ServiceError.badRequest("the body is empty; send the image bytes") }
        let data = Data(buffer: body, byteTransferStrategy: .noCopy)
        let metrics = self.metrics
        let name = served.name
        let text = try await onPool(deadline: deadline) { () throws -> String in
            let start = ContinuousClock.now
            let input = try model.preprocess(imageData: data, source: "request body")
            let preprocessed = ContinuousClock.now
            metrics.preprocessing(model: name, duration: preprocessed - start)
            guard let inputName = model.inputs.first?.name, let outputName = model.outputs.first?.name else {
                throw ModelError.notAClassifier("the model declares no inputs or outputs")
            }
            let outputs = try model.run([inputName: input])
            metrics.inference(model: name, duration: ContinuousClock.now - preprocessed)
            guard let scores = outputs[outputName], scores.dtype == .float32 else {
                throw ModelError.notAClassifier("output '\(outputName)' is not a float32 tensor")
            }
            let classes = try model.classifications(from: scores, top: count)
            let entries = classes.map {
                "{\"index\": \($0.index), \"label\": \(JSONText.string($0.label)), \"probability\": \(JSONText.number($0.probability))}"
            }
            return "{\"model_name\": \(JSONText.string(name)), \"predictions\": [" + entries.joined(separator: ", ")
                + "]}\n"
        }
        return json(text)
    }
}

func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
    Response(
        status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
}
