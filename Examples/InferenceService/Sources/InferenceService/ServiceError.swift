import Apus
import Foundation
import Hummingbird

/// An error answer: status, message and, for 503, when to retry. The body is the Open Inference
/// Protocol's error object, `{"error": "<message>"}`.
public struct ServiceError: Error, HTTPResponseError, CustomStringConvertible {
    /// HTTP status.
    public var status: HTTPResponse.Status
    /// What went wrong, for the client.
    public var message: String
    /// Seconds for `Retry-After` (503 only).
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        let body = "{\"error\": \(JSONText.string(message))}\n"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func badRequest(_ message: String) -> ServiceError { ServiceError(.badRequest, message) }

    /// Maps the library's typed errors: problems with the caller's input are 400, the rest 500.
    static func from(_ error: ModelError) -> ServiceError {
        switch error {
        case .graph(let graphError):
            switch graphError {
            case .unknownInput, .missingInput, .inputDTypeMismatch, .inputShapeMismatch, .node,
                .memoryBudgetExceeded, .limitExceeded:
                return .badRequest("\(graphError)")
            default:
                return ServiceError(.internalServerError, "\(graphError)")
            }
        case .image, .noPreprocessing, .notAClassifier:
            return .badRequest(error.description)
        default:
            return ServiceError(.internalServerError, error.description)
        }
    }
}

/// Minimal JSON text writing (the service writes its responses by hand: large float arrays are
/// much faster to print directly than through `JSONEncoder`).
enum JSONText {
    static func string(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Shortest round-tripping decimal; non-finite values as Python's `json` writes them.
    static func number(_ value: Float) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "Infinity" : "-Infinity" }
        return value.description
    }
}
