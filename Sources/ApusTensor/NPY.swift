import Foundation

/// NumPy `.npy` reading and writing (format versions 1.0, 2.0 and 3.0).
///
/// Only little-endian, C-ordered arrays of the ``DType`` element types are read. Other element
/// types (notably float64) are rejected rather than converted: a silent cast would hide a
/// mismatch between what a caller produced and what the model expects.
extension Tensor {
    /// The largest `.npy` header Apus reads, in bytes. NumPy itself refuses headers above 10,000
    /// bytes by default; a generous cap still keeps a hostile length field from costing memory.
    public static let npyMaxHeaderByteCount = 1 << 20

    /// Reads a tensor from the bytes of a `.npy` file.
    ///
    /// - Throws: ``TensorError/invalidNPY(offset:reason:)`` naming the byte offset and the problem,
    ///   or an allocation error.
    public init(npyData data: Data) throws(TensorError) {
        let header = try NPYHeader.parse(data)
        let count = try header.shape.checkedElementCount()
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: header.dtype.byteSize)
        guard !overflow else {
            throw .invalidNPY(offset: header.dataOffset, reason: "shape \(header.shape) overflows the byte count")
        }
        let available = data.count - header.dataOffset
        guard byteCount == available else {
            throw .invalidNPY(
                offset: header.dataOffset,
                reason: "shape \(header.shape) of \(header.dtype) needs \(byteCount) data bytes, file has \(available)")
        }
        try self.init(zeros: header.shape, dtype: header.dtype)
        let destination = rawPointer
        let start = data.startIndex + header.dataOffset
        data[start..<(start + byteCount)].withUnsafeBytes { source in
            guard let base = source.baseAddress else { return }
            destination.copyMemory(from: base, byteCount: byteCount)
        }
        if header.dtype == .bool {
            // Any byte other than 0 or 1 is not a valid Swift Bool; refuse instead of normalizing.
            let bytes = destination.assumingMemoryBound(to: UInt8.self)
            for index in 0..<byteCount where bytes[index] > 1 {
                throw .invalidNPY(
                    offset: header.dataOffset + index, reason: "bool element \(index) has byte value \(bytes[index])")
            }
        }
    }

    /// Reads a tensor from a `.npy` file.
    ///
    /// - Throws: a file-system error, or ``TensorError``.
    public init(contentsOfNPY url: URL) throws {
        let data = try Data(contentsOf: url)
        try self.init(npyData: data)
    }

    /// The `.npy` (version 1.0, or 2.0 when the header needs it) bytes of this tensor.
    ///
    /// - Throws: ``TensorError`` if the sizes do not fit (not expected for valid tensors).
    public func npyData() throws(TensorError) -> Data {
        let shapeText: String
        switch shape.rank {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.dimensions.map(String.init).joined(separator: ", ") + ")"
        }
        let dictionary = "{'descr': '\(NPYHeader.descr(for: dtype))', 'fortran_order': False, 'shape': \(shapeText), }"
        // Byte-identical to numpy.save: spaces for the first axis to grow in place, then padding
        // so the data starts at a multiple of 64 bytes, then a newline. Versions 1.0 and 2.0
        // differ only in the width of the length field.
        let growth = shape.rank > 0 ? Swift.max(0, 21 - String(shape[0]).count) : 0
        func padded(prefixLength: Int) -> [UInt8] {
            let unpadded = prefixLength + dictionary.utf8.count + growth + 1
            let padding = 64 - unpadded % 64
            return Array(dictionary.utf8) + [UInt8](repeating: 0x20, count: growth + padding) + [0x0a]
        }
        var header = padded(prefixLength: 10)
        let useVersion2 = header.count > 65_535
        if useVersion2 { header = padded(prefixLength: 12) }
        let headerLength = header.count

        var result = Data()
        result.reserveCapacity(12 + headerLength + byteCount)
        result.append(contentsOf: [0x93] + Array("NUMPY".utf8))
        if !useVersion2 {
            result.append(contentsOf: [1, 0, UInt8(headerLength & 0xff), UInt8(headerLength >> 8)])
        } else {
            result.append(contentsOf: [2, 0])
            for shift in stride(from: 0, to: 32, by: 8) { result.append(UInt8((headerLength >> shift) & 0xff)) }
        }
        result.append(contentsOf: header)
        result.append(rawPointer.assumingMemoryBound(to: UInt8.self), count: byteCount)
        return result
    }

    /// Writes this tensor as a `.npy` file.
    ///
    /// - Throws: a file-system error, or ``TensorError``.
    public func writeNPY(to url: URL) throws {
        try npyData().write(to: url, options: .atomic)
    }
}

/// The parsed fixed part and dictionary of a `.npy` header.
struct NPYHeader {
    var dtype: DType
    var shape: Shape
    /// Offset of the first data byte from the start of the file.
    var dataOffset: Int

    static func descr(for dtype: DType) -> String {
        switch dtype {
        case .float32: "<f4"
        case .float16: "<f2"
        case .int64: "<i8"
        case .int32: "<i4"
        case .int8: "|i1"
        case .uint8: "|u1"
        case .bool: "|b1"
        }
    }

    static func parse(_ data: Data) throws(TensorError) -> NPYHeader {
        let bytes = [UInt8](data.prefix(12))
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 10 else {
            throw .invalidNPY(
                offset: bytes.count, reason: "file of \(bytes.count) bytes is shorter than the .npy preamble")
        }
        guard Array(bytes[0..<6]) == magic else { throw .invalidNPY(offset: 0, reason: "missing \\x93NUMPY magic") }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else {
                throw .invalidNPY(offset: bytes.count, reason: "truncated version \(major).0 header length")
            }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw .invalidNPY(offset: 6, reason: "unsupported format version \(major).\(bytes[7])")
        }
        guard headerLength <= Tensor.npyMaxHeaderByteCount else {
            throw .invalidNPY(
                offset: 8, reason: "header length \(headerLength) exceeds the limit of \(Tensor.npyMaxHeaderByteCount)")
        }
        guard headerLength <= data.count - headerStart else {
            throw .invalidNPY(
                offset: 8,
                reason: "header length \(headerLength) runs past the end of the \(data.count)-byte file")
        }
        let start = data.startIndex + headerStart
        let headerBytes = [UInt8](data[start..<(start + headerLength)])
        // Version 1 and 2 headers are latin-1, version 3 UTF-8; the dictionary Apus accepts is
        // plain ASCII in all three, so decoding as UTF-8 loses nothing.
        guard let text = String(validating: headerBytes, as: UTF8.self) else {
            throw .invalidNPY(offset: headerStart, reason: "header is not valid text")
        }
        var parser = DictionaryParser(text: Array(text.utf8), baseOffset: headerStart)
        let entries = try parser.parseDictionary()

        guard case .string(let descr)? = entries["descr"] else {
            throw .invalidNPY(offset: headerStart, reason: "header has no string 'descr'")
        }
        guard case .bool(let fortranOrder)? = entries["fortran_order"] else {
            throw .invalidNPY(offset: headerStart, reason: "header has no boolean 'fortran_order'")
        }
        guard case .tuple(let dims)? = entries["shape"] else {
            throw .invalidNPY(offset: headerStart, reason: "header has no tuple 'shape'")
        }
        let unknown = entries.keys.filter { !["descr", "fortran_order", "shape"].contains($0) }
        guard unknown.isEmpty else {
            throw .invalidNPY(offset: headerStart, reason: "header has unexpected keys \(unknown.sorted())")
        }
        guard !fortranOrder else {
            throw .invalidNPY(
                offset: headerStart, reason: "fortran_order True is not supported; save a C-ordered array")
        }
        let dtype = try dtype(forDescr: descr, offset: headerStart)
        for dimension in dims where dimension < 0 {
            throw .invalidNPY(offset: headerStart, reason: "shape \(dims) has a negative dimension")
        }
        let shape: Shape
        do {
            shape = try Shape(validating: dims)
        } catch {
            throw .invalidNPY(offset: headerStart, reason: "shape \(dims): \(error)")
        }
        return NPYHeader(dtype: dtype, shape: shape, dataOffset: headerStart + headerLength)
    }

    static func dtype(forDescr descr: String, offset: Int) throws(TensorError) -> DType {
        let characters = Array(descr)
        guard characters.count >= 2 else { throw .invalidNPY(offset: offset, reason: "unknown descr '\(descr)'") }
        let order = characters[0]
        let kind = String(characters.dropFirst())
        let dtype: DType
        switch kind {
        case "f4": dtype = .float32
        case "f2": dtype = .float16
        case "i8": dtype = .int64
        case "i4": dtype = .int32
        case "i1": dtype = .int8
        case "u1": dtype = .uint8
        case "b1": dtype = .bool
        case "f8":
            throw .invalidNPY(
                offset: offset,
                reason: "descr '\(descr)' is float64, which Apus does not read; convert with .astype(np.float32)")
        default:
            throw .invalidNPY(offset: offset, reason: "unsupported descr '\(descr)'")
        }
        switch order {
        case "<": return dtype
        case "|", ">", "=":
            // Byte order is moot for one-byte types; NumPy writes '|' for them.
            if dtype.byteSize == 1 { return dtype }
            guard order != ">" else {
                throw .invalidNPY(
                    offset: offset, reason: "descr '\(descr)' is big-endian; only little-endian data is read")
            }
            throw .invalidNPY(offset: offset, reason: "descr '\(descr)' is big-endian; only little-endian data is read")
        default:
            throw .invalidNPY(offset: offset, reason: "unsupported byte order in descr '\(descr)'")
        }
    }
}

/// A parser for the subset of Python literal syntax that `.npy` headers use: a dictionary of
/// string keys to strings, booleans and tuples of integers.
private struct DictionaryParser {
    enum Value {
        case string(String)
        case bool(Bool)
        case tuple([Int])
    }

    let text: [UInt8]
    let baseOffset: Int
    var position = 0

    init(text: [UInt8], baseOffset: Int) {
        self.text = text
        self.baseOffset = baseOffset
    }

    func error(_ reason: String) -> TensorError {
        .invalidNPY(offset: baseOffset + position, reason: reason)
    }

    mutating func skipSpace() {
        while position < text.count, [0x20, 0x0a, 0x0d, 0x09].contains(text[position]) { position += 1 }
    }

    mutating func expect(_ character: UInt8) throws(TensorError) {
        skipSpace()
        guard position < text.count, text[position] == character else {
            throw error("expected '\(Character(Unicode.Scalar(character)))' in header")
        }
        position += 1
    }

    /// Consumes `character` if it is next (after spaces).
    mutating func consume(_ character: UInt8) -> Bool {
        skipSpace()
        if position < text.count, text[position] == character {
            position += 1
            return true
        }
        return false
    }

    mutating func parseDictionary() throws(TensorError) -> [String: Value] {
        try expect(UInt8(ascii: "{"))
        var entries: [String: Value] = [:]
        while !consume(UInt8(ascii: "}")) {
            let key = try parseString()
            try expect(UInt8(ascii: ":"))
            let value = try parseValue()
            guard entries.updateValue(value, forKey: key) == nil else {
                throw error("duplicate key '\(key)' in header")
            }
            if !consume(UInt8(ascii: ",")) {
                try expect(UInt8(ascii: "}"))
                break
            }
        }
        skipSpace()
        guard position == text.count else { throw error("unexpected text after the header dictionary") }
        return entries
    }

    mutating func parseString() throws(TensorError) -> String {
        skipSpace()
        guard position < text.count, text[position] == UInt8(ascii: "'") || text[position] == UInt8(ascii: "\"") else {
            throw error("expected a quoted string in header")
        }
        let quote = text[position]
        position += 1
        let start = position
        while position < text.count, text[position] != quote {
            guard text[position] != UInt8(ascii: "\\") else {
                throw error("escape sequences are not supported in header")
            }
            position += 1
        }
        guard position < text.count else { throw error("unterminated string in header") }
        let value = String(decoding: text[start..<position], as: UTF8.self)
        position += 1
        return value
    }

    mutating func parseValue() throws(TensorError) -> Value {
        skipSpace()
        guard position < text.count else { throw error("header ends where a value is expected") }
        switch text[position] {
        case UInt8(ascii: "'"), UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "("): return .tuple(try parseTuple())
        default:
            if matchWord("True") { return .bool(true) }
            if matchWord("False") { return .bool(false) }
            throw error("unsupported value in header")
        }
    }

    mutating func matchWord(_ word: String) -> Bool {
        let bytes = Array(word.utf8)
        guard position + bytes.count <= text.count, Array(text[position..<(position + bytes.count)]) == bytes else {
            return false
        }
        position += bytes.count
        return true
    }

    mutating func parseTuple() throws(TensorError) -> [Int] {
        try expect(UInt8(ascii: "("))
        var values: [Int] = []
        while !consume(UInt8(ascii: ")")) {
            values.append(try parseInteger())
            if !consume(UInt8(ascii: ",")) {
                try expect(UInt8(ascii: ")"))
                break
            }
        }
        return values
    }

    mutating func parseInteger() throws(TensorError) -> Int {
        skipSpace()
        var negative = false
        if position < text.count, text[position] == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        let start = position
        var value = 0
        while position < text.count, text[position] >= UInt8(ascii: "0"), text[position] <= UInt8(ascii: "9") {
            let digit = Int(text[position] - UInt8(ascii: "0"))
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { throw error("dimension does not fit in a 64-bit integer") }
            value = sum
            position += 1
        }
        // Python 2 era files may write long integers as `3L`.
        if position < text.count, text[position] == UInt8(ascii: "L") { position += 1 }
        guard position > start else { throw error("expected an integer in the shape tuple") }
        return negative ? -value : value
    }
}
