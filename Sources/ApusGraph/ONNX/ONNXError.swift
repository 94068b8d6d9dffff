/// Why an ONNX model or tensor file could not be read.
///
/// Wire-level cases carry the byte offset, the protobuf message being read and the field number;
/// semantic cases name the tensor, node, attribute or value. ``context(_:_:)`` wraps an error with
/// where it happened (for example `node 'conv1' (Conv)`); ``root`` strips those wrappers.
public enum ONNXError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file could not be opened, inspected or read.
    case io(path: String, reason: String)
    /// The file is larger than ``ONNXReader/Options/maxFileBytes``.
    case fileTooLarge(path: String, bytes: Int, limit: Int)
    /// A field needs more bytes than the enclosing message has left.
    case truncated(offset: Int, message: String, field: Int, needed: Int, available: Int)
    /// A varint is longer than 10 bytes, overflows 64 bits or is cut off by the end of the message.
    case malformedVarint(offset: Int, message: String)
    /// A field tag has field number 0 or uses a group or reserved wire type.
    case invalidTag(offset: Int, message: String, field: Int, wireType: Int)
    /// A known field uses a wire type its declared type cannot have.
    case unexpectedWireType(offset: Int, message: String, field: Int, expected: Int, actual: Int)
    /// Messages are nested deeper than ``ONNXReader/Options/maxNestingDepth``.
    case nestingTooDeep(offset: Int, limit: Int)
    /// Graph attributes are nested deeper than ``ONNXReader/Options/maxSubgraphDepth``.
    case subgraphTooDeep(limit: Int)
    /// The model has more nodes or tensors than the options allow.
    case limitExceeded(what: String, limit: Int)
    /// A string field is not valid UTF-8.
    case invalidUTF8(offset: Int, message: String, field: Int)
    /// A numeric field holds a value outside the range its meaning allows.
    case valueOutOfRange(offset: Int, message: String, field: Int, value: Int64)
    /// The model has no graph.
    case missingGraph
    /// A tensor or value uses an ONNX data type Apus does not support (the raw ONNX code is kept).
    case unsupportedDataType(name: String, dataType: Int)
    /// A tensor's dims are negative or their product overflows.
    case invalidDimensions(tensor: String, dims: [Int64], reason: String)
    /// A tensor's data holds another number of bytes or elements than its dims and data type need.
    case dataLengthMismatch(tensor: String, field: String, expected: Int, actual: Int)
    /// A tensor's data is present in a form that cannot be used (values out of range, several sources…).
    case invalidTensorData(tensor: String, reason: String)
    /// A tensor is larger than ``ONNXReader/Options/maxTensorBytes``.
    case tensorTooLarge(tensor: String, bytes: Int, limit: Int)
    /// External data is missing, escapes the model's folder, or does not fit its file.
    case externalData(tensor: String, location: String, reason: String)
    /// A valid ONNX feature that Apus does not support.
    case unsupported(String)
    /// An attribute has no value, several kinds, or a value that cannot be represented.
    case invalidAttribute(name: String, reason: String)
    /// A graph input or output declaration cannot be used.
    case invalidValueInfo(name: String, reason: String)
    /// Two producers (nodes, initializers) define the same value, or a name is repeated.
    case duplicateName(String, reason: String)
    /// The model imports two versions of one operator set.
    case conflictingOpset(domain: String, versions: [Int])
    /// `underlying` happened inside the named element.
    indirect case context(String, ONNXError)

    /// The error without ``context(_:_:)`` wrappers.
    public var root: ONNXError {
        if case .context(_, let inner) = self { return inner.root }
        return self
    }

    public var description: String {
        switch self {
        case .io(let path, let reason): "cannot read \(path): \(reason)"
        case .fileTooLarge(let path, let bytes, let limit):
            "\(path) has \(bytes) bytes, more than the limit of \(limit)"
        case .truncated(let offset, let message, let field, let needed, let available):
            "truncated \(message) field \(field) at byte \(offset): needs \(needed) bytes, \(available) left"
        case .malformedVarint(let offset, let message): "malformed varint in \(message) at byte \(offset)"
        case .invalidTag(let offset, let message, let field, let wireType):
            "invalid tag in \(message) at byte \(offset): field \(field), wire type \(wireType)"
        case .unexpectedWireType(let offset, let message, let field, let expected, let actual):
            "\(message) field \(field) at byte \(offset) has wire type \(actual), expected \(expected)"
        case .nestingTooDeep(let offset, let limit): "messages nested deeper than \(limit) at byte \(offset)"
        case .subgraphTooDeep(let limit): "subgraphs nested deeper than \(limit)"
        case .limitExceeded(let what, let limit): "more than \(limit) \(what)"
        case .invalidUTF8(let offset, let message, let field):
            "\(message) field \(field) at byte \(offset) is not UTF-8"
        case .valueOutOfRange(let offset, let message, let field, let value):
            "\(message) field \(field) at byte \(offset) has out-of-range value \(value)"
        case .missingGraph: "the model has no graph"
        case .unsupportedDataType(let name, let dataType):
            "'\(name)' has ONNX data type \(dataType) (\(ONNXDataType.name(of: dataType))), which Apus does not support"
        case .invalidDimensions(let tensor, let dims, let reason):
            "tensor '\(tensor)' has invalid dims \(dims): \(reason)"
        case .dataLengthMismatch(let tensor, let field, let expected, let actual):
            "tensor '\(tensor)' \(field) has \(actual), expected \(expected)"
        case .invalidTensorData(let tensor, let reason): "tensor '\(tensor)': \(reason)"
        case .tensorTooLarge(let tensor, let bytes, let limit):
            "tensor '\(tensor)' needs \(bytes) bytes, more than the limit of \(limit)"
        case .externalData(let tensor, let location, let reason):
            "external data '\(location)' of tensor '\(tensor)': \(reason)"
        case .unsupported(let what): "unsupported: \(what)"
        case .invalidAttribute(let name, let reason): "attribute '\(name)': \(reason)"
        case .invalidValueInfo(let name, let reason): "value '\(name)': \(reason)"
        case .duplicateName(let name, let reason): "duplicate name '\(name)': \(reason)"
        case .conflictingOpset(let domain, let versions): "opset domain '\(domain)' imported with versions \(versions)"
        case .context(let place, let inner): "\(place): \(inner)"
        }
    }
}
