/// Why an `.apus` file was refused (or could not be written). Every case names the byte offset or
/// the header field (as a path such as `tensors["conv1.weight"].offset`) and the numbers involved.
public enum ArtifactError: Error, Sendable, CustomStringConvertible {
    /// The file is shorter than the 16-byte preamble.
    case tooShort(fileSize: Int, minimum: Int)
    /// The first four bytes are not `APUS`.
    case badMagic([UInt8])
    /// The binary format major version is not one this reader understands.
    case unsupportedVersion(major: UInt32, supported: UInt32)
    /// The header's `format.version` major differs from the binary field.
    case versionMismatch(binary: UInt32, header: Int)
    /// The header length exceeds the configured limit.
    case headerTooLarge(length: UInt64, limit: Int)
    /// The header length runs past the end of the file.
    case headerBeyondFile(length: UInt64, available: Int)
    /// The header is not well-formed UTF-8; `offset` is the file offset of the first bad byte.
    case invalidUTF8(offset: Int)
    /// The header is not valid JSON; `offset` is a file offset.
    case invalidJSON(offset: Int, reason: String)
    /// Arrays/objects nest deeper than the limit (checked before parsing); `offset` is a file offset.
    case jsonTooDeep(depth: Int, limit: Int, offset: Int)
    /// A required field is absent.
    case missingField(String)
    /// A field has the wrong JSON type.
    case wrongType(String, expected: String, actual: String)
    /// A number that must be an integer is fractional or out of range.
    case notAnInteger(String, value: String)
    /// A field has an unacceptable value.
    case invalidValue(String, reason: String)
    /// A dtype name that is not one of `float32 float16 int64 int32 int8 uint8 bool`.
    case unknownDType(String, name: String)
    /// A tensor dimension is negative.
    case negativeDimension(String, shape: [Int])
    /// The element count or byte count of a shape overflows `Int`.
    case shapeOverflow(String, shape: [Int])
    /// A tensor's `length` is not the product of its shape times the dtype size.
    case lengthMismatch(String, expected: Int, actual: Int)
    /// A tensor's offset is not a multiple of the alignment.
    case misalignedOffset(String, offset: Int, alignment: Int)
    /// A tensor's byte range leaves the data section.
    case outOfBounds(String, offset: Int, length: Int, dataLength: Int)
    /// Two tensors share bytes.
    case overlap(String, String)
    /// The data section does not end where the last tensor (rounded up to 64 bytes) ends.
    case dataLengthMismatch(declared: Int, expected: Int)
    /// The file is shorter than the header says (truncated data section).
    case fileSizeMismatch(expected: Int, actual: Int)
    /// Bytes follow the data section.
    case trailingBytes(dataEnd: Int, fileSize: Int)
    /// The padding between the header and the data section is not zero; `offset` is a file offset.
    case nonZeroPadding(offset: Int)
    /// More tensors, nodes, … than the configured limit.
    case limitExceeded(String, count: Int, limit: Int)
    /// A field names a tensor that is not in the `tensors` table.
    case unknownTensor(String, name: String)
    /// An attribute kind this format version does not store (graph, graphs, …).
    case unsupportedAttribute(node: String, name: String, kind: String)
    /// The graph is not well-formed (undefined value, duplicate producer, cycle, …).
    case graph(GraphError)
    /// The integrity algorithm is not `sha256`.
    case unsupportedIntegrityAlgorithm(String)
    /// The SHA-256 of the data section differs from the header's.
    case checksumMismatch(expected: String, actual: String)
    /// A system call failed.
    case io(path: String, operation: String, errno: Int32)
    /// The path is not a regular file.
    case notARegularFile(String)

    public var description: String {
        switch self {
        case .tooShort(let size, let minimum): "file of \(size) bytes is shorter than the \(minimum)-byte preamble"
        case .badMagic(let bytes): "not an .apus file: magic bytes are \(bytes), expected \"APUS\""
        case .unsupportedVersion(let major, let supported):
            "unsupported .apus format major version \(major) (this reader supports \(supported))"
        case .versionMismatch(let binary, let header):
            "format.version major \(header) disagrees with the binary version field \(binary)"
        case .headerTooLarge(let length, let limit): "header length \(length) exceeds the limit of \(limit) bytes"
        case .headerBeyondFile(let length, let available):
            "header length \(length) runs past the end of the file (\(available) bytes after the preamble)"
        case .invalidUTF8(let offset): "header is not valid UTF-8 at byte \(offset)"
        case .invalidJSON(let offset, let reason): "header is not valid JSON at byte \(offset): \(reason)"
        case .jsonTooDeep(let depth, let limit, let offset):
            "header JSON nests deeper than \(limit) (depth \(depth) at byte \(offset))"
        case .missingField(let path): "missing required field \(path)"
        case .wrongType(let path, let expected, let actual): "\(path) must be \(expected), found \(actual)"
        case .notAnInteger(let path, let value): "\(path) must be an integer representable as Int, found \(value)"
        case .invalidValue(let path, let reason): "\(path): \(reason)"
        case .unknownDType(let path, let name): "\(path): unknown dtype \"\(name)\""
        case .negativeDimension(let path, let shape): "\(path): negative dimension in shape \(shape)"
        case .shapeOverflow(let path, let shape): "\(path): size of shape \(shape) overflows Int"
        case .lengthMismatch(let path, let expected, let actual):
            "\(path): length is \(actual) bytes, shape and dtype need \(expected)"
        case .misalignedOffset(let path, let offset, let alignment):
            "\(path): offset \(offset) is not a multiple of \(alignment)"
        case .outOfBounds(let path, let offset, let length, let dataLength):
            "\(path): bytes \(offset)..<\(offset) + \(length) leave the data section of \(dataLength) bytes"
        case .overlap(let a, let b): "tensors \"\(a)\" and \"\(b)\" overlap"
        case .dataLengthMismatch(let declared, let expected):
            "data_length is \(declared), but the last tensor ends (rounded up to 64) at \(expected)"
        case .fileSizeMismatch(let expected, let actual):
            "file is \(actual) bytes, the header describes \(expected) (truncated?)"
        case .trailingBytes(let dataEnd, let fileSize):
            "\(fileSize - dataEnd) unexpected bytes after the data section, which ends at \(dataEnd)"
        case .nonZeroPadding(let offset): "padding byte at \(offset) is not zero"
        case .limitExceeded(let what, let count, let limit): "\(count) \(what) exceed the limit of \(limit)"
        case .unknownTensor(let path, let name): "\(path) names tensor \"\(name)\", which is not in the tensors table"
        case .unsupportedAttribute(let node, let name, let kind):
            "node '\(node)': attribute '\(name)' of kind \(kind) is not supported by .apus format 1"
        case .graph(let error): "invalid graph: \(error)"
        case .unsupportedIntegrityAlgorithm(let name): "unsupported integrity algorithm \"\(name)\" (expected sha256)"
        case .checksumMismatch(let expected, let actual):
            "SHA-256 of the data section is \(actual), the header says \(expected)"
        case .io(let path, let operation, let code): "\(operation) \(path) failed: \(ioErrorText(code)) (errno \(code))"
        case .notARegularFile(let path): "\(path) is not a regular file"
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private func ioErrorText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error" }
    return String(cString: text)
}
