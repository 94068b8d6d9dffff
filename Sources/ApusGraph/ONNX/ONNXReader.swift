import ApusTensor
import Foundation

/// Reads ONNX models (`ModelProto`) and tensors (`TensorProto`) into ``Graph`` and ``Tensor``.
///
/// The protobuf wire format is decoded here directly, treating the file as untrusted: every
/// length is checked before it is used, sizes use overflow-checked arithmetic, nesting and counts
/// are bounded by ``Options``, and every problem is a typed ``ONNXError``.
///
/// ```swift
/// let graph = try ONNXReader.read(contentsOf: URL(fileURLWithPath: "resnet18.onnx"))
/// ```
///
/// Mapping to the IR: graph inputs that are also initializers are not listed in
/// ``Graph/inputs``; unnamed nodes are named `"<op_type>_<index>"` (made unique); unknown
/// dimensions become ``Dimension/symbolic(_:)`` named `"?<n>"` with `n` unique within the model
/// (so two unknown dimensions are never taken to be equal); domain `"ai.onnx"` is stored as `""`;
/// `Constant` nodes stay nodes. Model-local functions, training info and metadata are ignored.
public enum ONNXReader {
    /// Resource bounds for one read. Every limit is checked before the memory it guards is used.
    public struct Options: Sendable {
        /// Largest model file read into memory (protobuf itself cannot exceed 2 GiB).
        public var maxFileBytes: Int = 1 << 31
        /// Deepest nesting of protobuf messages.
        public var maxNestingDepth = 100
        /// Deepest nesting of graphs inside graph attributes (If, Loop, Scan bodies).
        public var maxSubgraphDepth = 32
        /// Most nodes in the model, subgraphs included.
        public var maxNodes = 1_000_000
        /// Most tensors (initializers and tensor attributes) in the model.
        public var maxTensors = 1_000_000
        /// Largest single tensor, in bytes (in-file or external).
        public var maxTensorBytes: Int = 1 << 36

        /// The default limits.
        public init() {}
    }

    /// Reads a model file. External data is resolved relative to the file's folder.
    ///
    /// - Throws: ``ONNXError``.
    public static func read(contentsOf url: URL, options: Options = .init()) throws(ONNXError) -> Graph {
        try FileBytes.read(path: url.path, limit: options.maxFileBytes) { bytes throws(ONNXError) in
            try read(bytes: bytes, baseDirectory: url.deletingLastPathComponent(), options: options)
        }
    }

    /// Reads a model from bytes. `baseDirectory` is the folder external data is resolved against;
    /// with `nil`, a model that uses external data is an error.
    ///
    /// - Throws: ``ONNXError``.
    public static func read(data: Data, baseDirectory: URL?, options: Options = .init()) throws(ONNXError) -> Graph {
        guard data.count <= options.maxFileBytes else {
            throw .fileTooLarge(path: "<data>", bytes: data.count, limit: options.maxFileBytes)
        }
        return try withBytes(data) { bytes throws(ONNXError) in
            try read(bytes: bytes, baseDirectory: baseDirectory, options: options)
        }
    }

    /// Reads a serialized `TensorProto` (for example an ONNX test-data `input_0.pb`).
    ///
    /// - Throws: ``ONNXError``; external data is an error here.
    public static func readTensor(data: Data, options: Options = .init()) throws(ONNXError) -> Tensor {
        try readNamedTensor(data: data, options: options).tensor
    }

    /// Reads a serialized `TensorProto` and returns its name (empty if it has none) with it.
    ///
    /// - Throws: ``ONNXError``; external data is an error here.
    public static func readNamedTensor(
        data: Data, options: Options = .init()
    ) throws(ONNXError) -> (name: String, tensor: Tensor) {
        guard data.count <= options.maxFileBytes else {
            throw .fileTooLarge(path: "<data>", bytes: data.count, limit: options.maxFileBytes)
        }
        return try withBytes(data) { bytes throws(ONNXError) in
            var reader = ProtobufReader(buffer: bytes, message: "TensorProto")
            let fields = try TensorProtoFields(&reader, maxDepth: options.maxNestingDepth)
            let builder = TensorBuilder(buffer: bytes, options: options, externalData: nil)
            return (fields.name, try builder.tensor(from: fields))
        }
    }

    private static func withBytes<Result>(
        _ data: Data, _ body: (UnsafeRawBufferPointer) throws(ONNXError) -> Result
    ) throws(ONNXError) -> Result {
        let result: Swift.Result<Result, ONNXError> = data.withUnsafeBytes { bytes in
            do throws(ONNXError) {
                return .success(try body(bytes))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    static func read(
        bytes: UnsafeRawBufferPointer, baseDirectory: URL?, options: Options
    ) throws(ONNXError) -> Graph {
        var parser = ModelParser(
            buffer: bytes, options: options,
            builder: TensorBuilder(
                buffer: bytes, options: options,
                externalData: baseDirectory.map { ExternalDataReader(baseDirectory: $0) }))
        return try parser.parseModel()
    }
}

/// Maps `ModelProto` and its messages onto the IR. Field numbers are those of onnx.proto.
private struct ModelParser {
    let buffer: UnsafeRawBufferPointer
    let options: ONNXReader.Options
    let builder: TensorBuilder
    var opsetImports: [String: Int] = [:]
    var nodeCount = 0
    var tensorCount = 0
    var unknownDimensionCount = 0

    init(buffer: UnsafeRawBufferPointer, options: ONNXReader.Options, builder: TensorBuilder) {
        self.buffer = buffer
        self.options = options
        self.builder = builder
    }

    var maxDepth: Int { options.maxNestingDepth }

    mutating func parseModel() throws(ONNXError) -> Graph {
        var reader = ProtobufReader(buffer: buffer, message: "ModelProto")
        // opset_import (8) usually follows graph (7); read it first so subgraphs can inherit it.
        var graphReader: ProtobufReader?
        var imports: [String: Int] = [:]
        while let (field, wireType) = try reader.nextField() {
            switch field {
            case 7:
                try reader.expect(wireType, is: .lengthDelimited)
                graphReader = try reader.readMessage("GraphProto", maxDepth: maxDepth)
            case 8:
                try reader.expect(wireType, is: .lengthDelimited)
                var opset = try reader.readMessage("OperatorSetIdProto", maxDepth: maxDepth)
                var domain = ""
                var version: Int64 = 1
                while let (opsetField, opsetWire) = try opset.nextField() {
                    switch opsetField {
                    case 1: domain = try opset.readString(opsetWire)
                    case 2: version = try opset.readInt64(opsetWire)
                    default: try opset.skip(opsetWire)
                    }
                }
                if domain == "ai.onnx" { domain = "" }
                let value = Int(version)
                if let existing = imports[domain], existing != value {
                    throw .conflictingOpset(domain: domain, versions: [existing, value])
                }
                imports[domain] = value
            default: try reader.skip(wireType)
            }
        }
        guard var graphReader else { throw .missingGraph }
        opsetImports = imports
        return try parseGraph(&graphReader, subgraphDepth: 0)
    }

    mutating func parseGraph(_ reader: inout ProtobufReader, subgraphDepth: Int) throws(ONNXError) -> Graph {
        var name = ""
        var nodes: [Node] = []
        var initializers: [String: Tensor] = [:]
        var inputs: [ValueInfo] = []
        var outputs: [ValueInfo] = []
        while let (field, wireType) = try reader.nextField() {
            switch field {
            case 1:
                try reader.expect(wireType, is: .lengthDelimited)
                nodeCount += 1
                guard nodeCount <= options.maxNodes else {
                    throw .limitExceeded(what: "nodes", limit: options.maxNodes)
                }
                var nodeReader = try reader.readMessage("NodeProto", maxDepth: maxDepth)
                nodes.append(try parseNode(&nodeReader, index: nodes.count, subgraphDepth: subgraphDepth))
            case 2: name = try reader.readString(wireType)
            case 5:
                let tensor = try parseTensor(&reader, wireType)
                guard initializers.updateValue(tensor.tensor, forKey: tensor.name) == nil else {
                    throw .duplicateName(tensor.name, reason: "two initializers have this name")
                }
            case 11, 12:
                try reader.expect(wireType, is: .lengthDelimited)
                var infoReader = try reader.readMessage("ValueInfoProto", maxDepth: maxDepth)
                let info = try parseValueInfo(&infoReader)
                if field == 11 { inputs.append(info) } else { outputs.append(info) }
            case 15:
                throw .unsupported("sparse_initializer in graph '\(name)'")
            default: try reader.skip(wireType)
            }
        }
        let context = name.isEmpty ? "graph" : "graph '\(name)'"
        // Inputs that have initializers are defaults the caller may override in ONNX; Apus treats
        // them as constants, as ONNX Runtime does for IR ≥ 4 models exported by PyTorch.
        inputs.removeAll { initializers[$0.name] != nil }
        do throws(ONNXError) {
            try nameUnnamedNodes(&nodes)
            try checkProducers(nodes: nodes, initializers: initializers, inputs: inputs)
        } catch {
            throw .context(context, error)
        }
        return Graph(
            name: name, inputs: inputs, outputs: outputs, nodes: nodes, initializers: initializers,
            opsetImports: opsetImports)
    }

    /// Gives every unnamed node the name `"<op_type>_<index>"`, adding a suffix if a node already has it.
    func nameUnnamedNodes(_ nodes: inout [Node]) throws(ONNXError) {
        var taken = Set(nodes.lazy.map(\.name).filter { !$0.isEmpty })
        for index in nodes.indices where nodes[index].name.isEmpty {
            var candidate = "\(nodes[index].opType)_\(index)"
            var suffix = 1
            while taken.contains(candidate) {
                candidate = "\(nodes[index].opType)_\(index)_\(suffix)"
                suffix += 1
            }
            taken.insert(candidate)
            nodes[index].name = candidate
        }
    }

    /// Rejects values with two producers (ONNX Runtime does too; others let the last one win).
    func checkProducers(nodes: [Node], initializers: [String: Tensor], inputs: [ValueInfo]) throws(ONNXError) {
        var producers: [String: String] = [:]
        for input in inputs {
            guard producers.updateValue("graph input", forKey: input.name) == nil else {
                throw .duplicateName(input.name, reason: "declared twice as a graph input")
            }
        }
        for name in initializers.keys { producers[name] = "initializer" }
        for node in nodes {
            for output in node.outputs where !output.isEmpty {
                if let previous = producers.updateValue("node '\(node.name)'", forKey: output) {
                    throw .duplicateName(output, reason: "produced by \(previous) and by node '\(node.name)'")
                }
            }
        }
    }

    mutating func parseTensor(
        _ reader: inout ProtobufReader, _ wireType: WireType
    ) throws(ONNXError) -> (name: String, tensor: Tensor) {
        try reader.expect(wireType, is: .lengthDelimited)
        tensorCount += 1
        guard tensorCount <= options.maxTensors else {
            throw .limitExceeded(what: "tensors", limit: options.maxTensors)
        }
        var tensorReader = try reader.readMessage("TensorProto", maxDepth: maxDepth)
        let fields = try TensorProtoFields(&tensorReader, maxDepth: maxDepth)
        do throws(ONNXError) {
            return (fields.name, try builder.tensor(from: fields))
        } catch {
            throw .context("tensor '\(fields.name)'", error)
        }
    }

    mutating func parseNode(
        _ reader: inout ProtobufReader, index: Int, subgraphDepth: Int
    ) throws(ONNXError) -> Node {
        var node = Node(name: "", opType: "", inputs: [], outputs: [])
        do throws(ONNXError) {
            while let (field, wireType) = try reader.nextField() {
                switch field {
                case 1: node.inputs.append(try reader.readString(wireType))
                case 2: node.outputs.append(try reader.readString(wireType))
                case 3: node.name = try reader.readString(wireType)
                case 4: node.opType = try reader.readString(wireType)
                case 5:
                    try reader.expect(wireType, is: .lengthDelimited)
                    var attributeReader = try reader.readMessage("AttributeProto", maxDepth: maxDepth)
                    let (name, value) = try parseAttribute(&attributeReader, subgraphDepth: subgraphDepth)
                    guard node.attributes.updateValue(value, forKey: name) == nil else {
                        throw .duplicateName(name, reason: "attribute given twice")
                    }
                case 7:
                    let domain = try reader.readString(wireType)
                    node.domain = domain == "ai.onnx" ? "" : domain
                default: try reader.skip(wireType)
                }
            }
            guard !node.opType.isEmpty else { throw .unsupported("node without op_type") }
        } catch {
            let label = node.name.isEmpty ? "node #\(index)" : "node '\(node.name)'"
            throw .context(node.opType.isEmpty ? label : "\(label) (\(node.opType))", error)
        }
        return node
    }

    mutating func parseAttribute(
        _ reader: inout ProtobufReader, subgraphDepth: Int
    ) throws(ONNXError) -> (String, Attribute) {
        var name = ""
        var type = 0
        var float: Float?
        var int: Int64?
        var string: String?
        var tensor: Tensor?
        var graph: Graph?
        var floats: [UInt32] = []
        var ints: [Int64] = []
        var strings: [String] = []
        var tensors: [Tensor] = []
        var graphs: [Graph] = []
        var unsupportedKind: String?
        do throws(ONNXError) {
            while let (field, wireType) = try reader.nextField() {
                switch field {
                case 1: name = try reader.readString(wireType)
                case 2: float = try reader.readFloat(wireType)
                case 3: int = try reader.readInt64(wireType)
                case 4: string = try reader.readString(wireType)
                case 5: tensor = try parseTensor(&reader, wireType).tensor
                case 6, 11:
                    try reader.expect(wireType, is: .lengthDelimited)
                    guard subgraphDepth + 1 <= options.maxSubgraphDepth else {
                        throw .subgraphTooDeep(limit: options.maxSubgraphDepth)
                    }
                    var graphReader = try reader.readMessage("GraphProto", maxDepth: maxDepth)
                    let subgraph = try parseGraph(&graphReader, subgraphDepth: subgraphDepth + 1)
                    if field == 6 { graph = subgraph } else { graphs.append(subgraph) }
                case 7: try reader.appendFixed32s(wireType, to: &floats)
                case 8: try reader.appendVarints(wireType, to: &ints) { Int64(bitPattern: $0) }
                case 9: strings.append(try reader.readString(wireType))
                case 10: tensors.append(try parseTensor(&reader, wireType).tensor)
                case 14, 15:
                    unsupportedKind = "type proto"
                    try reader.skip(wireType)
                case 22, 23:
                    unsupportedKind = "sparse tensor"
                    try reader.skip(wireType)
                case 20: type = Int(try reader.readInt32(wireType))
                case 21: throw .unsupported("attribute reference (ref_attr_name) outside a function")
                default: try reader.skip(wireType)
                }
            }
            if type == 0 {
                // IR version 1 files have no type field: infer it from the field that is set.
                type =
                    float != nil
                    ? 1
                    : int != nil
                        ? 2
                        : string != nil
                            ? 3
                            : tensor != nil
                                ? 4
                                : graph != nil
                                    ? 5
                                    : !floats.isEmpty
                                        ? 6
                                        : !ints.isEmpty
                                            ? 7
                                            : !strings.isEmpty
                                                ? 8
                                                : !tensors.isEmpty
                                                    ? 9
                                                    : !graphs.isEmpty ? 10 : 0
            }
            let value: Attribute
            switch type {
            case 1: value = .float(float ?? 0)
            case 2: value = .int(Int(int ?? 0))
            case 3: value = .string(string ?? "")
            case 4:
                guard let tensor else { throw .invalidAttribute(name: name, reason: "type TENSOR without a tensor") }
                value = .tensor(tensor)
            case 5:
                guard let graph else { throw .invalidAttribute(name: name, reason: "type GRAPH without a graph") }
                value = .graph(graph)
            case 6: value = .floats(floats.map { Float(bitPattern: $0) })
            case 7: value = .ints(ints.map { Int($0) })
            case 8: value = .strings(strings)
            case 9: value = .tensors(tensors)
            case 10: value = .graphs(graphs)
            case 11, 12: throw .unsupported("sparse tensor attribute")
            case 13, 14: throw .unsupported("type proto attribute")
            case 0:
                if let unsupportedKind { throw .unsupported("\(unsupportedKind) attribute") }
                throw .invalidAttribute(name: name, reason: "no value")
            default: throw .invalidAttribute(name: name, reason: "unknown attribute type \(type)")
            }
            return (name, value)
        } catch {
            throw .context(name.isEmpty ? "attribute" : "attribute '\(name)'", error)
        }
    }

    mutating func parseValueInfo(_ reader: inout ProtobufReader) throws(ONNXError) -> ValueInfo {
        var info = ValueInfo(name: "", dtype: nil, dimensions: nil)
        var typeRange: ProtobufReader?
        while let (field, wireType) = try reader.nextField() {
            switch field {
            case 1: info.name = try reader.readString(wireType)
            case 2:
                try reader.expect(wireType, is: .lengthDelimited)
                typeRange = try reader.readMessage("TypeProto", maxDepth: maxDepth)
            default: try reader.skip(wireType)
            }
        }
        guard var typeReader = typeRange else { return info }
        do throws(ONNXError) {
            while let (field, wireType) = try typeReader.nextField() {
                switch field {
                case 1:
                    try typeReader.expect(wireType, is: .lengthDelimited)
                    var tensorType = try typeReader.readMessage("TypeProto.Tensor", maxDepth: maxDepth)
                    try parseTensorType(&tensorType, into: &info)
                case 4, 5, 7, 8, 9:
                    let kinds = [4: "sequence", 5: "map", 7: "opaque", 8: "sparse tensor", 9: "optional"]
                    throw .unsupported("\(kinds[field] ?? "non-tensor") type")
                default: try typeReader.skip(wireType)
                }
            }
        } catch {
            throw .context("value '\(info.name)'", error)
        }
        return info
    }

    mutating func parseTensorType(_ reader: inout ProtobufReader, into info: inout ValueInfo) throws(ONNXError) {
        while let (field, wireType) = try reader.nextField() {
            switch field {
            case 1:
                let code = Int(try reader.readInt32(wireType))
                if code != 0 {
                    guard let dtype = ONNXDataType.dtype(code) else {
                        throw .unsupportedDataType(name: info.name, dataType: code)
                    }
                    info.dtype = dtype
                }
            case 2:
                try reader.expect(wireType, is: .lengthDelimited)
                var shape = try reader.readMessage("TensorShapeProto", maxDepth: maxDepth)
                var dimensions: [Dimension] = []
                while let (shapeField, shapeWire) = try shape.nextField() {
                    guard shapeField == 1 else {
                        try shape.skip(shapeWire)
                        continue
                    }
                    try shape.expect(shapeWire, is: .lengthDelimited)
                    var dimension = try shape.readMessage("TensorShapeProto.Dimension", maxDepth: maxDepth)
                    var value: Dimension?
                    while let (dimField, dimWire) = try dimension.nextField() {
                        switch dimField {
                        case 1:
                            let offset = dimension.position
                            let size = try dimension.readInt64(dimWire)
                            guard size >= 0 else {
                                throw .valueOutOfRange(
                                    offset: offset, message: "TensorShapeProto.Dimension", field: 1, value: size)
                            }
                            value = .fixed(Int(size))
                        case 2:
                            let symbol = try dimension.readString(dimWire)
                            if !symbol.isEmpty { value = .symbolic(symbol) }
                        default: try dimension.skip(dimWire)
                        }
                    }
                    if value == nil {
                        value = .symbolic("?\(unknownDimensionCount)")
                        unknownDimensionCount += 1
                    }
                    if let value { dimensions.append(value) }
                }
                info.dimensions = dimensions
            default: try reader.skip(wireType)
            }
        }
    }
}
