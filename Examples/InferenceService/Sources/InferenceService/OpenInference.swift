import Apus
import Foundation

/// The Open Inference Protocol (KServe v2 / Triton) JSON tensor codec.
enum OpenInference {
    /// Protocol datatype names.
    static func datatype(_ dtype: DType) -> String {
        switch dtype {
        case .float32: "FP32"
        case .float16: "FP16"
        case .int64: "INT64"
        case .int32: "INT32"
        case .int8: "INT8"
        case .uint8: "UINT8"
        case .bool: "BOOL"
        }
    }

    static func dtype(_ datatype: String) -> DType? {
        switch datatype {
        case "FP32": .float32
        case "FP16": .float16
        case "INT64": .int64
        case "INT32": .int32
        case "INT8": .int8
        case "UINT8": .uint8
        case "BOOL": .bool
        default: nil
        }
    }

    /// A parsed `/infer` request.
    struct Request {
        var id: String?
        var inputs: [String: Tensor]
        /// Output names asked for; nil for all.
        var outputs: [String]?
    }

    /// Deepest JSON nesting accepted (a 4-D tensor written nested is depth 6 inside the request).
    static let maxDepth = 64

    /// Parses and validates an `/infer` body against the model's declared inputs.
    static func parseRequest(_ body: Data, model: Model) throws(ServiceError) -> Request {
        try checkDepth(body)
        let decoded: RequestBody
        do {
            decoded = try JSONDecoder().decode(RequestBody.self, from: body)
        } catch let error as DecodingError {
            throw .badRequest("invalid inference request: \(describe(error))")
        } catch {
            throw .badRequest("invalid inference request: \(error)")
        }
        guard !decoded.inputs.isEmpty else { throw .badRequest("the request has no inputs") }
        let declared = Dictionary(model.inputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var inputs: [String: Tensor] = [:]
        for (index, input) in decoded.inputs.enumerated() {
            let field = "inputs[\(index)] ('\(input.name)')"
            guard let info = declared[input.name] else {
                throw .badRequest(
                    "\(field): the model has no input '\(input.name)'; its inputs are "
                        + model.inputs.map { "'\($0.name)'" }.joined(separator: ", "))
            }
            guard inputs[input.name] == nil else { throw .badRequest("\(field): input given twice") }
            if input.parameters?["binary_data_size"] != nil {
                throw .badRequest("\(field): the binary tensor data extension is not supported; send JSON data")
            }
            guard let dtype = dtype(input.datatype) else {
                throw .badRequest(
                    "\(field): datatype '\(input.datatype)' is not supported (FP32, FP16, INT64, INT32, INT8, UINT8, BOOL)"
                )
            }
            if let expected = info.dtype, expected != dtype {
                throw .badRequest(
                    "\(field): datatype \(input.datatype) does not match the model's \(datatype(expected)); "
                        + "values are not converted")
            }
            guard input.shape.allSatisfy({ $0 >= 0 }) else {
                throw .badRequest("\(field): shape \(input.shape) has a negative dimension")
            }
            var count = 1
            for dimension in input.shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw .badRequest("\(field): shape \(input.shape) overflows") }
                count = product
            }
            if let dimensions = info.dimensions {
                var matches = dimensions.count == input.shape.count
                if matches {
                    for (declaredDimension, given) in zip(dimensions, input.shape) {
                        if case .fixed(let size) = declaredDimension, size != given { matches = false }
                    }
                }
                guard matches else {
                    throw .badRequest(
                        "\(field): shape \(input.shape) does not match the model's "
                            + "[\(dimensions.map { $0.description }.joined(separator: ", "))]")
                }
            }
            var values: [JSONValue] = []
            values.reserveCapacity(min(count, 1 << 24))
            guard let data = input.data else { throw .badRequest("\(field): 'data' is missing") }
            flatten(data, into: &values)
            guard values.count == count else {
                throw .badRequest(
                    "\(field): 'data' holds \(values.count) values but shape \(input.shape) needs \(count)")
            }
            inputs[input.name] = try makeTensor(values, shape: input.shape, dtype: dtype, field: field)
        }
        let outputNames = decoded.outputs?.map(\.name)
        if let outputNames {
            let known = Set(model.outputs.map(\.name))
            for name in outputNames where !known.contains(name) {
                throw .badRequest(
                    "outputs: the model has no output '\(name)'; its outputs are "
                        + model.outputs.map { "'\($0.name)'" }.joined(separator: ", "))
            }
        }
        return Request(id: decoded.id, inputs: inputs, outputs: outputNames)
    }

    static func flatten(_ value: JSONValue, into values: inout [JSONValue]) {
        if case .array(let elements) = value {
            for element in elements { flatten(element, into: &values) }
        } else {
            values.append(value)
        }
    }

    static func makeTensor(_ values: [JSONValue], shape: [Int], dtype: DType, field: String) throws(ServiceError)
        -> Tensor
    {
        func fail(_ index: Int, _ what: String) -> ServiceError {
            .badRequest("\(field): data[\(index)] = \(values[index]) is not \(what)")
        }
        func floats() throws(ServiceError) -> [Float] {
            var out: [Float] = []
            out.reserveCapacity(values.count)
            for (index, value) in values.enumerated() {
                switch value {
                case .int(let i): out.append(Float(i))
                case .double(let d): out.append(Float(d))
                default: throw fail(index, "a number")
                }
            }
            return out
        }
        func integers<T: FixedWidthInteger>(_: T.Type) throws(ServiceError) -> [T] {
            var out: [T] = []
            out.reserveCapacity(values.count)
            for (index, value) in values.enumerated() {
                guard case .int(let i) = value, let typed = T(exactly: i) else {
                    throw fail(index, "an integer in \(T.min)...\(T.max)")
                }
                out.append(typed)
            }
            return out
        }
        let tensorShape = Shape(shape)
        do {
            switch dtype {
            case .float32: return try Tensor(shape: tensorShape, checkedScalars: try floats())
            case .float16:
                #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
                    return try Tensor(shape: tensorShape, checkedScalars: try floats().map { Float16($0) })
                #else
                    throw ServiceError.badRequest("\(field): FP16 inputs are not supported on this platform")
                #endif
            case .int64: return try Tensor(shape: tensorShape, checkedScalars: try integers(Int64.self))
            case .int32: return try Tensor(shape: tensorShape, checkedScalars: try integers(Int32.self))
            case .int8: return try Tensor(shape: tensorShape, checkedScalars: try integers(Int8.self))
            case .uint8: return try Tensor(shape: tensorShape, checkedScalars: try integers(UInt8.self))
            case .bool:
                var out: [Bool] = []
                for (index, value) in values.enumerated() {
                    guard case .bool(let b) = value else { throw fail(index, "true or false") }
                    out.append(b)
                }
                return try Tensor(shape: tensorShape, checkedScalars: out)
            }
        } catch let error as ServiceError {
            throw error
        } catch {
            throw .badRequest("\(field): \(error)")
        }
    }

    /// Writes the `/infer` response.
    static func encodeResponse(model: String, id: String?, outputs: [(String, Tensor)]) -> String {
        var text = "{\"model_name\": \(JSONText.string(model)), \"model_version\": \"1\""
        if let id { text += ", \"id\": \(JSONText.string(id))" }
        text += ", \"outputs\": ["
        for (index, (name, tensor)) in outputs.enumerated() {
            if index > 0 { text += ", " }
            text += "{\"name\": \(JSONText.string(name)), \"datatype\": \"\(datatype(tensor.dtype))\", \"shape\": ["
            text += tensor.shape.dimensions.map(String.init).joined(separator: ", ") + "], \"data\": ["
            appendData(tensor, to: &text)
            text += "]}"
        }
        return text + "]}\n"
    }

    static func appendData(_ tensor: Tensor, to text: inout String) {
        func join<T: TensorScalar>(_ type: T.Type, _ format: (T) -> String) {
            tensor.withUnsafeBufferPointer(as: type) { buffer in
                var first = true
                for value in buffer {
                    if !first { text += ", " }
                    first = false
                    text += format(value)
                }
            }
        }
        switch tensor.dtype {
        case .float32: join(Float.self, JSONText.number)
        case .float16:
            let bits = UnsafeBufferPointer(
                start: tensor.rawPointer.assumingMemoryBound(to: UInt16.self), count: tensor.elementCount)
            text += bits.map { JSONText.number(float32(fromHalf: $0)) }.joined(separator: ", ")
        case .int64: join(Int64.self) { String($0) }
        case .int32: join(Int32.self) { String($0) }
        case .int8: join(Int8.self) { String($0) }
        case .uint8: join(UInt8.self) { String($0) }
        case .bool: join(Bool.self) { $0 ? "true" : "false" }
        }
    }

    /// IEEE half → single, written out so the service needs no kernel module.
    static func float32(fromHalf bits: UInt16) -> Float {
        let sign = UInt32(bits >> 15) << 31
        let exponent = Int((bits >> 10) & 0x1f)
        let mantissa = UInt32(bits & 0x3ff)
        if exponent == 0x1f { return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13)) }
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        }
        return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
    }

    /// Rejects nesting deeper than ``maxDepth`` by a flat scan before any recursive parse
    /// (deep recursion overflows small thread stacks).
    static func checkDepth(_ body: Data) throws(ServiceError) {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in body {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxDepth {
                    throw .badRequest("invalid inference request: JSON nested deeper than \(maxDepth)")
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }
                .joined()
            return text.isEmpty ? "the body" : String(text.drop(while: { $0 == "." }))
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.isEmpty ? "" : " in \(path(context))"
            return "missing field '\(key.stringValue)'\(parent)"
        case .typeMismatch(let type, let context): return "\(path(context)): expected \(type)"
        case .valueNotFound(let type, let context): return "\(path(context)): expected \(type), found null"
        case .dataCorrupted(let context):
            let underlying = context.underlyingError.map { ": \($0)" } ?? ""
            return
                "\(context.codingPath.isEmpty ? "malformed JSON" : path(context)): \(context.debugDescription)\(underlying)"
        @unknown default: return "\(error)"
        }
    }
}

/// The request body as JSON.
struct RequestBody: Decodable {
    var id: String?
    var inputs: [InputTensor]
    var outputs: [RequestedOutput]?
    var parameters: [String: JSONValue]?

    struct InputTensor: Decodable {
        var name: String
        var shape: [Int]
        var datatype: String
        var data: JSONValue?
        var parameters: [String: JSONValue]?
    }

    struct RequestedOutput: Decodable {
        var name: String
        var parameters: [String: JSONValue]?
    }
}

/// Any JSON value; numbers keep whether they were written as integers (exact to 64 bits).
enum JSONValue: Decodable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            if let count = array.count { elements.reserveCapacity(count) }
            while !array.isAtEnd { elements.append(try array.decode(JSONValue.self)) }
            self = .array(elements)
            return
        }
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let b): String(b)
        case .int(let i): String(i)
        case .double(let d): String(d)
        case .string(let s): JSONText.string(s)
        case .array: "[…]"
        case .object: "{…}"
        }
    }
}
