import ApusTensor

/// ONNX `TensorProto.DataType` codes and their mapping to ``DType``.
enum ONNXDataType {
    static let names: [Int: String] = [
        0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
        8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
        15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
        20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
        27: "FLOAT6E2M3", 28: "FLOAT6E3M2",
    ]

    static func name(of code: Int) -> String { names[code] ?? "unknown" }

    /// The ``DType`` of an ONNX data type code, or `nil` if Apus has none. DOUBLE is not mapped on
    /// purpose: converting it to float32 silently would change the model's numbers.
    static func dtype(_ code: Int) -> DType? {
        switch code {
        case 1: .float32
        case 2: .uint8
        case 3: .int8
        case 6: .int32
        case 7: .int64
        case 9: .bool
        case 10: .float16
        default: nil
        }
    }
}

/// The fields of one `TensorProto`, with bulk data kept as byte ranges of the input until the
/// tensor is built.
struct TensorProtoFields {
    var name = ""
    var dims: [Int64] = []
    var dataType = 0
    var floatData: [UInt32] = []
    var int32Data: [Int32] = []
    var int64Data: [Int64] = []
    var rawData: Range<Int>?
    /// Elements of string_data, double_data and uint64_data (never decoded; only reported).
    var otherDataCount = 0
    var otherDataField = ""
    var hasSegment = false
    var dataLocation: Int32 = 0
    var externalData: [(key: String, value: String)] = []

    /// Parses a `TensorProto` message (field numbers from onnx.proto).
    init(_ reader: inout ProtobufReader, maxDepth: Int) throws(ONNXError) {
        while let (field, wireType) = try reader.nextField() {
            switch field {
            case 1: try reader.appendVarints(wireType, to: &dims) { Int64(bitPattern: $0) }
            case 2: dataType = Int(try reader.readInt32(wireType))
            case 3:
                hasSegment = true
                try reader.skip(wireType)
            case 4: try reader.appendFixed32s(wireType, to: &floatData)
            case 5:
                // int32 values arrive sign-extended to 64 bits; keep the low 32 like protobuf does.
                try reader.appendVarints(wireType, to: &int32Data) { Int32(truncatingIfNeeded: $0) }
            case 6, 10, 11:
                otherDataCount += try reader.skipCounting(wireType)
                otherDataField = field == 6 ? "string_data" : field == 10 ? "double_data" : "uint64_data"
            case 7: try reader.appendVarints(wireType, to: &int64Data) { Int64(bitPattern: $0) }
            case 8: name = try reader.readString(wireType)
            case 9:
                try reader.expect(wireType, is: .lengthDelimited)
                rawData = try reader.readLengthDelimited()
            case 13:
                try reader.expect(wireType, is: .lengthDelimited)
                var entry = try reader.readMessage("StringStringEntryProto", maxDepth: maxDepth)
                var key = ""
                var value = ""
                while let (entryField, entryWire) = try entry.nextField() {
                    switch entryField {
                    case 1: key = try entry.readString(entryWire)
                    case 2: value = try entry.readString(entryWire)
                    default: try entry.skip(entryWire)
                    }
                }
                externalData.append((key, value))
            case 14: dataLocation = try reader.readInt32(wireType)
            default: try reader.skip(wireType)
            }
        }
    }
}

/// Turns parsed `TensorProto` fields into a ``Tensor`` in fresh 64-byte-aligned storage.
struct TensorBuilder {
    let buffer: UnsafeRawBufferPointer
    let options: ONNXReader.Options
    let externalData: ExternalDataReader?

    func tensor(from fields: TensorProtoFields) throws(ONNXError) -> Tensor {
        let name = fields.name
        guard let dtype = ONNXDataType.dtype(fields.dataType) else {
            throw .unsupportedDataType(name: name, dataType: fields.dataType)
        }
        guard !fields.hasSegment else { throw .unsupported("segmented tensor '\(name)'") }
        var dimensions: [Int] = []
        dimensions.reserveCapacity(fields.dims.count)
        var count = 1
        for dim in fields.dims {
            guard dim >= 0 else {
                throw .invalidDimensions(tensor: name, dims: fields.dims, reason: "negative dimension")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(dim))
            guard !overflow else {
                throw .invalidDimensions(tensor: name, dims: fields.dims, reason: "element count overflows")
            }
            count = product
            dimensions.append(Int(dim))
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else {
            throw .invalidDimensions(tensor: name, dims: fields.dims, reason: "byte count overflows")
        }
        guard byteCount <= options.maxTensorBytes else {
            throw .tensorTooLarge(tensor: name, bytes: byteCount, limit: options.maxTensorBytes)
        }

        let external = fields.dataLocation == 1
        guard fields.dataLocation == 0 || external else {
            throw .invalidTensorData(tensor: name, reason: "unknown data_location \(fields.dataLocation)")
        }
        let sources =
            [
                fields.rawData != nil, !fields.floatData.isEmpty, !fields.int32Data.isEmpty, !fields.int64Data.isEmpty,
                fields.otherDataCount > 0, external,
            ]
            .filter { $0 }.count
        guard sources <= 1 else { throw .invalidTensorData(tensor: name, reason: "data is given in \(sources) fields") }
        guard fields.otherDataCount == 0 else {
            throw .invalidTensorData(
                tensor: name, reason: "\(fields.otherDataField) is not valid for data type \(dtype)")
        }

        // Check that the data present matches the declared size before allocating it, so that a
        // few bytes claiming a huge tensor are refused without allocating (RELIABILITY.md point 2).
        var externalSlice: ExternalDataReader.Slice?
        if external {
            guard let externalData else {
                throw .externalData(
                    tensor: name, location: fields.externalData.first { $0.key == "location" }?.value ?? "",
                    reason: "no base directory to resolve external data against")
            }
            externalSlice = try externalData.slice(byteCount: byteCount, tensor: name, entries: fields.externalData)
        } else if let raw = fields.rawData {
            guard raw.count == byteCount else {
                throw .dataLengthMismatch(
                    tensor: name, field: "raw_data bytes", expected: byteCount, actual: raw.count)
            }
        } else if !fields.floatData.isEmpty {
            guard dtype == .float32 else {
                throw .invalidTensorData(tensor: name, reason: "float_data is not valid for data type \(dtype)")
            }
            try checkCount(fields.floatData.count, count, name: name, field: "float_data elements")
        } else if !fields.int64Data.isEmpty {
            guard dtype == .int64 else {
                throw .invalidTensorData(tensor: name, reason: "int64_data is not valid for data type \(dtype)")
            }
            try checkCount(fields.int64Data.count, count, name: name, field: "int64_data elements")
        } else if !fields.int32Data.isEmpty {
            try checkCount(fields.int32Data.count, count, name: name, field: "int32_data elements")
        } else if count != 0 {
            throw .dataLengthMismatch(tensor: name, field: "data elements", expected: count, actual: 0)
        }

        // Every size is checked above, before this allocation.
        let tensor: Tensor
        do {
            tensor = try Tensor(zeros: Shape(dimensions), dtype: dtype)
        } catch {
            throw .invalidTensorData(tensor: name, reason: "\(error)")
        }
        let destination = tensor.rawPointer

        if let externalSlice, let externalData {
            try externalData.read(externalSlice, into: destination)
        } else if let raw = fields.rawData {
            if byteCount > 0, let base = buffer.baseAddress {
                destination.copyMemory(from: base + raw.lowerBound, byteCount: byteCount)
            }
        } else if !fields.floatData.isEmpty {
            copyBytes(of: fields.floatData, to: destination)
        } else if !fields.int64Data.isEmpty {
            copyBytes(of: fields.int64Data, to: destination)
        } else if !fields.int32Data.isEmpty {
            try copyInt32Data(fields.int32Data, dtype: dtype, to: destination, name: name)
        }

        if dtype == .bool {
            // A Swift Bool must be 0 or 1; refuse other bytes instead of normalizing them.
            let bytes = destination.assumingMemoryBound(to: UInt8.self)
            for index in 0..<count where bytes[index] > 1 {
                throw .invalidTensorData(tensor: name, reason: "bool element \(index) has byte value \(bytes[index])")
            }
        }
        return tensor
    }

    private func copyBytes<Element>(of array: [Element], to destination: UnsafeMutableRawPointer) {
        array.withUnsafeBytes { source in
            if let base = source.baseAddress { destination.copyMemory(from: base, byteCount: source.count) }
        }
    }

    private func checkCount(_ actual: Int, _ expected: Int, name: String, field: String) throws(ONNXError) {
        guard actual == expected else {
            throw .dataLengthMismatch(tensor: name, field: field, expected: expected, actual: actual)
        }
    }

    /// int32_data carries INT32, and also (one element per entry) INT8, UINT8, BOOL and the bit
    /// pattern of FLOAT16, as onnx.proto documents. Values outside the element type's range are errors.
    private func copyInt32Data(
        _ values: [Int32], dtype: DType, to destination: UnsafeMutableRawPointer, name: String
    ) throws(ONNXError) {
        func outOfRange(_ index: Int) -> ONNXError {
            .invalidTensorData(tensor: name, reason: "int32_data[\(index)] = \(values[index]) does not fit \(dtype)")
        }
        switch dtype {
        case .int32:
            copyBytes(of: values, to: destination)
        case .int8:
            let out = destination.assumingMemoryBound(to: Int8.self)
            for (index, value) in values.enumerated() {
                guard let narrow = Int8(exactly: value) else { throw outOfRange(index) }
                out[index] = narrow
            }
        case .uint8, .bool:
            let out = destination.assumingMemoryBound(to: UInt8.self)
            for (index, value) in values.enumerated() {
                guard let narrow = UInt8(exactly: value), dtype == .uint8 || narrow <= 1 else {
                    throw outOfRange(index)
                }
                out[index] = narrow
            }
        case .float16:
            let out = destination.assumingMemoryBound(to: UInt16.self)
            for (index, value) in values.enumerated() {
                guard let bits = UInt16(exactly: value) else { throw outOfRange(index) }
                out[index] = bits
            }
        case .float32, .int64:
            throw .invalidTensorData(tensor: name, reason: "int32_data is not valid for data type \(dtype)")
        }
    }
}
