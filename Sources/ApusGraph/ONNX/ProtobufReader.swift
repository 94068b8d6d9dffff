/// Protobuf wire types (groups are deliberately absent: ONNX never uses them and they are rejected).
enum WireType: Int {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

/// A cursor over one protobuf message inside a byte buffer.
///
/// Every read checks its length against the bytes the message has left before touching memory;
/// sub-messages get their own reader bounded by their declared length, one nesting level deeper.
struct ProtobufReader {
    /// The whole input; offsets in errors are relative to its start.
    let buffer: UnsafeRawBufferPointer
    /// Offset of the next unread byte.
    private(set) var position: Int
    /// Offset one past the message's last byte.
    let end: Int
    /// Nesting depth of this message (the outermost message is 0).
    let depth: Int
    /// The message type name, for error messages.
    let message: String
    /// Field number of the field being read, for error messages.
    private(set) var field = 0
    /// Offset of the current field's tag.
    private(set) var fieldOffset = 0

    init(buffer: UnsafeRawBufferPointer, message: String) {
        self.buffer = buffer
        self.position = 0
        self.end = buffer.count
        self.depth = 0
        self.message = message
    }

    private init(buffer: UnsafeRawBufferPointer, range: Range<Int>, depth: Int, message: String) {
        self.buffer = buffer
        self.position = range.lowerBound
        self.end = range.upperBound
        self.depth = depth
        self.message = message
    }

    var isAtEnd: Bool { position >= end }

    /// Reads the next field tag, or returns `nil` at the end of the message.
    mutating func nextField() throws(ONNXError) -> (number: Int, wireType: WireType)? {
        guard position < end else { return nil }
        fieldOffset = position
        let tag = try readVarint()
        let number = tag >> 3
        let rawWireType = Int(tag & 7)
        guard number >= 1, number <= (1 << 29) - 1, let wireType = WireType(rawValue: rawWireType) else {
            throw .invalidTag(
                offset: fieldOffset, message: message, field: Int(truncatingIfNeeded: number), wireType: rawWireType)
        }
        field = Int(number)
        return (field, wireType)
    }

    /// Reads a base-128 varint of at most 10 bytes whose value fits in 64 bits.
    mutating func readVarint() throws(ONNXError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end, shift < 70 else { throw .malformedVarint(offset: start, message: message) }
            let byte = buffer[position]
            position += 1
            let payload = UInt64(byte & 0x7f)
            // The tenth byte may only contribute the 64th bit.
            if shift == 63, payload > 1 { throw .malformedVarint(offset: start, message: message) }
            result |= payload << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func readFixed32() throws(ONNXError) -> UInt32 {
        try require(4)
        let value = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: UInt32.self))
        position += 4
        return value
    }

    mutating func readFixed64() throws(ONNXError) -> UInt64 {
        try require(8)
        let value = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        position += 8
        return value
    }

    /// Reads a length prefix and returns the byte range it covers, checked against the message end.
    mutating func readLengthDelimited() throws(ONNXError) -> Range<Int> {
        let length = try readVarint()
        guard length <= UInt64(end - position) else {
            throw .truncated(
                offset: fieldOffset, message: message, field: field, needed: Int(clamping: length),
                available: end - position)
        }
        let start = position
        position += Int(length)
        return start..<position
    }

    /// Reads a length-delimited sub-message and returns a reader for it.
    mutating func readMessage(_ name: String, maxDepth: Int) throws(ONNXError) -> ProtobufReader {
        let range = try readLengthDelimited()
        guard depth + 1 <= maxDepth else { throw .nestingTooDeep(offset: range.lowerBound, limit: maxDepth) }
        return ProtobufReader(buffer: buffer, range: range, depth: depth + 1, message: name)
    }

    /// Skips a field of any accepted wire type.
    mutating func skip(_ wireType: WireType) throws(ONNXError) {
        switch wireType {
        case .varint: _ = try readVarint()
        case .fixed64: try require(8); position += 8
        case .fixed32: try require(4); position += 4
        case .lengthDelimited: _ = try readLengthDelimited()
        }
    }

    private func require(_ count: Int) throws(ONNXError) {
        guard end - position >= count else {
            throw .truncated(
                offset: fieldOffset, message: message, field: field, needed: count, available: end - position)
        }
    }

    func expect(_ wireType: WireType, is expected: WireType) throws(ONNXError) {
        guard wireType == expected else {
            throw .unexpectedWireType(
                offset: fieldOffset, message: message, field: field, expected: expected.rawValue,
                actual: wireType.rawValue)
        }
    }

    // MARK: Typed fields

    /// A `string` field, validated as UTF-8.
    mutating func readString(_ wireType: WireType) throws(ONNXError) -> String {
        try expect(wireType, is: .lengthDelimited)
        let range = try readLengthDelimited()
        guard let string = String(validating: UnsafeRawBufferPointer(rebasing: buffer[range]), as: UTF8.self) else {
            throw .invalidUTF8(offset: fieldOffset, message: message, field: field)
        }
        return string
    }

    /// An `int64` field (varint, two's complement).
    mutating func readInt64(_ wireType: WireType) throws(ONNXError) -> Int64 {
        try expect(wireType, is: .varint)
        return Int64(bitPattern: try readVarint())
    }

    /// An `int32` field. Protobuf encodes negative int32 values sign-extended to 64 bits and
    /// parsers keep the low 32 bits; values beyond 32 bits are rejected here instead.
    mutating func readInt32(_ wireType: WireType) throws(ONNXError) -> Int32 {
        try expect(wireType, is: .varint)
        let value = Int64(bitPattern: try readVarint())
        guard let result = Int32(exactly: value) else {
            throw .valueOutOfRange(offset: fieldOffset, message: message, field: field, value: value)
        }
        return result
    }

    /// A `float` field.
    mutating func readFloat(_ wireType: WireType) throws(ONNXError) -> Float {
        try expect(wireType, is: .fixed32)
        return Float(bitPattern: try readFixed32())
    }

    /// Appends the elements of a repeated varint field, packed or not.
    mutating func appendVarints<T>(
        _ wireType: WireType, to values: inout [T], _ convert: (UInt64) -> T?
    ) throws(ONNXError) {
        switch wireType {
        case .varint:
            let offset = position
            let raw = try readVarint()
            guard let value = convert(raw) else {
                throw .valueOutOfRange(offset: offset, message: message, field: field, value: Int64(bitPattern: raw))
            }
            values.append(value)
        case .lengthDelimited:
            let range = try readLengthDelimited()
            var inner = ProtobufReader(buffer: buffer, range: range, depth: depth, message: message)
            inner.field = field
            inner.fieldOffset = fieldOffset
            while !inner.isAtEnd {
                let offset = inner.position
                let raw = try inner.readVarint()
                guard let value = convert(raw) else {
                    throw .valueOutOfRange(
                        offset: offset, message: message, field: field, value: Int64(bitPattern: raw))
                }
                values.append(value)
            }
        default:
            try expect(wireType, is: .varint)
        }
    }

    /// Appends the elements of a repeated 32-bit fixed field (float), packed or not.
    mutating func appendFixed32s(_ wireType: WireType, to values: inout [UInt32]) throws(ONNXError) {
        switch wireType {
        case .fixed32:
            values.append(try readFixed32())
        case .lengthDelimited:
            let range = try readLengthDelimited()
            guard range.count % 4 == 0 else {
                throw .truncated(
                    offset: fieldOffset, message: message, field: field, needed: (range.count / 4 + 1) * 4,
                    available: range.count)
            }
            values.reserveCapacity(values.count + range.count / 4)
            for offset in stride(from: range.lowerBound, to: range.upperBound, by: 4) {
                values.append(UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            }
        default:
            try expect(wireType, is: .fixed32)
        }
    }

    /// Counts the elements of a repeated field Apus does not decode (double, uint64, bytes) so
    /// their presence can be reported.
    mutating func skipCounting(_ wireType: WireType) throws(ONNXError) -> Int {
        try skip(wireType)
        return 1
    }
}
