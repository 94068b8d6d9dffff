import ApusTensor
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A read-only private mapping of a whole file, unmapped when the last tensor using it goes away.
/// Its pages were never written, so dropping them (`MADV_DONTNEED`) only means the next read
/// fetches them from the file again.
final class MappedFile: @unchecked Sendable, ResidentPageReleasing {
    let base: UnsafeMutableRawPointer
    let count: Int

    init(base: UnsafeMutableRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    deinit { munmap(base, count) }

    func releaseResidentPages(_ start: UnsafeRawPointer, byteCount: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let from = UnsafeRawPointer(base).distance(to: start)
        guard from >= 0, byteCount > 0, from + byteCount <= count else { return }
        // Whole pages only: the neighbours of a tensor may still be in use.
        let first = (from + page - 1) / page * page
        let end = (from + byteCount) / page * page
        if end > first { madvise(base + first, end - first, MADV_DONTNEED) }
    }
}

/// Reads and validates `.apus` files (see Docs/artifact-format.md).
///
/// Every offset, length, shape, dtype and graph reference is checked, in the documented order,
/// before any tensor byte is touched; tensors then wrap the memory-mapped data section without
/// copying. Nothing in a file can crash the reader: each problem is a typed ``ArtifactError``.
///
/// ```swift
/// let artifact = try ArtifactReader.read(contentsOf: url, options: .init(verifyChecksum: true))
/// ```
public enum ArtifactReader {
    /// Resource limits (defaults from RELIABILITY.md) and optional checks.
    public struct Options: Sendable {
        /// Largest accepted JSON header, in bytes.
        public var maxHeaderBytes: Int
        /// Deepest accepted nesting of JSON arrays and objects.
        public var maxJSONDepth: Int
        /// Most entries in the `tensors` table.
        public var maxTensors: Int
        /// Most graph nodes.
        public var maxNodes: Int
        /// Whether to hash the whole data section and compare it with the header's SHA-256.
        public var verifyChecksum: Bool

        public init(
            maxHeaderBytes: Int = 100_000_000, maxJSONDepth: Int = 64, maxTensors: Int = 1_000_000,
            maxNodes: Int = 1_000_000, verifyChecksum: Bool = false
        ) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxJSONDepth = maxJSONDepth
            self.maxTensors = maxTensors
            self.maxNodes = maxNodes
            self.verifyChecksum = verifyChecksum
        }
    }

    /// The format major version this reader understands.
    public static let supportedMajorVersion: UInt32 = 1
    /// The four magic bytes `APUS`.
    static let magic: [UInt8] = [0x41, 0x50, 0x55, 0x53]
    /// Bytes before the JSON header: magic, version, header length.
    static let preambleSize = 16
    /// Alignment of the data section and of every tensor in it.
    static let alignment = 64

    /// Memory-maps the file read-only and validates it.
    ///
    /// - Throws: ``ArtifactError`` naming the field or byte offset at fault.
    public static func read(contentsOf url: URL, options: Options = .init()) throws(ArtifactError) -> Artifact {
        let path = url.path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .io(path: path, operation: "stat", errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path) }
        guard let size = Int(exactly: info.st_size) else { throw .notARegularFile(path) }
        guard size >= preambleSize else { throw .tooShort(fileSize: size, minimum: preambleSize) }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != MAP_FAILED else { throw .io(path: path, operation: "mmap", errno: errno) }
        let file = MappedFile(base: address, count: size)
        return try validate(UnsafeRawBufferPointer(start: address, count: size), owner: file, options: options)
    }

    /// Validates an in-memory file, copying it once into aligned storage that its tensors share.
    ///
    /// - Throws: ``ArtifactError`` naming the field or byte offset at fault.
    public static func read(data: Data, options: Options = .init()) throws(ArtifactError) -> Artifact {
        guard data.count >= preambleSize else { throw .tooShort(fileSize: data.count, minimum: preambleSize) }
        let storage: TensorStorage
        do {
            storage = try TensorStorage(byteCount: data.count)
        } catch {
            throw .io(path: "<memory>", operation: "allocate \(data.count) bytes for", errno: ENOMEM)
        }
        data.withUnsafeBytes { source in
            if let base = source.baseAddress { storage.baseAddress.copyMemory(from: base, byteCount: source.count) }
        }
        return try validate(
            UnsafeRawBufferPointer(start: storage.baseAddress, count: data.count), owner: storage, options: options)
    }

    // MARK: - Validation, in the documented order

    static func validate(
        _ file: UnsafeRawBufferPointer, owner: AnyObject, options: Options
    ) throws(ArtifactError) -> Artifact {
        // 1. Preamble.
        guard file.count >= preambleSize else { throw .tooShort(fileSize: file.count, minimum: preambleSize) }
        let magicBytes = Array(file[0..<4])
        guard magicBytes == magic else { throw .badMagic(magicBytes) }
        let major = UInt32(littleEndian: file.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard major == supportedMajorVersion else {
            throw .unsupportedVersion(major: major, supported: supportedMajorVersion)
        }
        let headerLength = UInt64(littleEndian: file.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard let headerCount = Int(exactly: headerLength), headerCount <= options.maxHeaderBytes else {
            throw .headerTooLarge(length: headerLength, limit: options.maxHeaderBytes)
        }
        let available = file.count - preambleSize
        guard headerCount <= available else { throw .headerBeyondFile(length: headerLength, available: available) }
        let headerBytes = UnsafeRawBufferPointer(rebasing: file[preambleSize..<(preambleSize + headerCount)])

        // 2. UTF-8, then nesting depth by a flat scan, then JSON.
        if let bad = firstInvalidUTF8Offset(headerBytes) { throw .invalidUTF8(offset: preambleSize + bad) }
        if let (depth, offset) = jsonNestingDepth(headerBytes, limit: options.maxJSONDepth) {
            throw .jsonTooDeep(depth: depth, limit: options.maxJSONDepth, offset: preambleSize + offset)
        }
        var parser = JSONParser(bytes: headerBytes, maxDepth: options.maxJSONDepth)
        let root: JSONValue
        do {
            root = try parser.parseDocument()
        } catch {
            throw .invalidJSON(offset: preambleSize + error.offset, reason: error.reason)
        }

        // 3. Schema.
        let header = try HeaderSchema(root, binaryMajor: major, options: options)
        var preprocessJSON: Data?
        if header.hasPreprocess, let range = parser.topLevelRanges["preprocess"] {
            preprocessJSON = Data(UnsafeRawBufferPointer(rebasing: headerBytes[range]))
        }

        // 4. Per-tensor checks, then overlap, then the end of the data section.
        let layout = try checkTensors(header.tensors, dataLength: header.dataLength)
        guard layout.expectedDataLength == header.dataLength else {
            throw .dataLengthMismatch(declared: header.dataLength, expected: layout.expectedDataLength)
        }

        // 5. The data section ends where the file ends.
        let headerEnd = preambleSize + headerCount
        guard let dataStart = roundUp(headerEnd) else {
            throw .headerTooLarge(length: headerLength, limit: options.maxHeaderBytes)
        }
        let (dataEnd, overflow) = dataStart.addingReportingOverflow(header.dataLength)
        guard !overflow, dataEnd <= file.count else {
            throw .fileSizeMismatch(expected: overflow ? Int.max : dataEnd, actual: file.count)
        }
        guard dataEnd == file.count else { throw .trailingBytes(dataEnd: dataEnd, fileSize: file.count) }
        for offset in headerEnd..<dataStart where file[offset] != 0 { throw .nonZeroPadding(offset: offset) }

        // 6. Tensors wrap the file's bytes; then the graph and everything that names tensors.
        guard let fileBase = file.baseAddress else { throw .tooShort(fileSize: 0, minimum: preambleSize) }
        let dataBase = UnsafeMutableRawPointer(mutating: fileBase) + dataStart
        var tensors: [String: Tensor] = [:]
        tensors.reserveCapacity(header.tensors.count)
        for entry in header.tensors {
            guard let dtype = entry.dtype else { throw .unknownDType(entry.path + ".dtype", name: entry.dtypeName) }
            let storage = TensorStorage(wrapping: dataBase + entry.offset, byteCount: entry.length, owner: owner)
            do {
                tensors[entry.name] = try Tensor(shape: Shape(validating: entry.shape), dtype: dtype, storage: storage)
            } catch {
                throw .invalidValue(entry.path, reason: "\(error)")
            }
        }
        let graph = try header.graph.resolve(tensors: tensors)
        var goldens: [GoldenExample] = []
        for (index, golden) in header.goldens.enumerated() {
            goldens.append(try golden.resolve(index: index, tensors: tensors, graph: graph))
        }
        let dataSection = TensorStorage(wrapping: dataBase, byteCount: header.dataLength, owner: owner)
        let artifact = Artifact(
            graph: graph, preprocessJSON: preprocessJSON, labels: header.labels, outputKind: header.outputKind,
            float16Weights: header.float16Weights, goldens: goldens, metadata: header.metadata,
            dataSHA256: header.dataSHA256,
            formatVersion: header.formatVersion, dataSection: dataSection)

        // 7. Optional integrity check.
        if options.verifyChecksum { try artifact.verifyChecksum() }
        return artifact
    }

    /// `value` rounded up to a multiple of the alignment, or `nil` on overflow.
    static func roundUp(_ value: Int) -> Int? {
        let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
        guard !overflow, value >= 0 else { return nil }
        return sum / alignment * alignment
    }

    /// Per-tensor checks in the documented order, then overlap; returns the data length the
    /// tensors imply (the end of the last one, rounded up to 64).
    static func checkTensors(
        _ entries: [TensorEntry], dataLength: Int
    ) throws(ArtifactError) -> (expectedDataLength: Int, sorted: [TensorEntry]) {
        var maxEnd = 0
        for entry in entries {
            guard let dtype = entry.dtype else { throw .unknownDType(entry.path + ".dtype", name: entry.dtypeName) }
            if entry.shape.contains(where: { $0 < 0 }) {
                throw .negativeDimension(entry.path + ".shape", shape: entry.shape)
            }
            var count = 1
            for dimension in entry.shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw .shapeOverflow(entry.path + ".shape", shape: entry.shape) }
                count = product
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow else { throw .shapeOverflow(entry.path + ".shape", shape: entry.shape) }
            guard bytes == entry.length else {
                throw .lengthMismatch(entry.path + ".length", expected: bytes, actual: entry.length)
            }
            guard entry.offset >= 0 else {
                throw .outOfBounds(
                    entry.path + ".offset", offset: entry.offset, length: entry.length, dataLength: dataLength)
            }
            guard entry.offset % alignment == 0 else {
                throw .misalignedOffset(entry.path + ".offset", offset: entry.offset, alignment: alignment)
            }
            let (end, endOverflow) = entry.offset.addingReportingOverflow(entry.length)
            guard !endOverflow, end <= dataLength else {
                throw .outOfBounds(
                    entry.path + ".offset", offset: entry.offset, length: entry.length, dataLength: dataLength)
            }
            maxEnd = Swift.max(maxEnd, end)
        }
        // Empty tensors occupy no bytes and cannot overlap anything.
        let sorted = entries.filter { $0.length > 0 }.sorted { ($0.offset, $0.name) < ($1.offset, $1.name) }
        for index in sorted.indices.dropFirst() {
            let previous = sorted[index - 1]
            if previous.offset + previous.length > sorted[index].offset {
                throw .overlap(previous.name, sorted[index].name)
            }
        }
        // maxEnd <= dataLength, so rounding cannot overflow unless dataLength is within 63 of Int.max.
        guard let expected = roundUp(maxEnd) else { throw .dataLengthMismatch(declared: dataLength, expected: Int.max) }
        return (expected, sorted)
    }
}

// MARK: - Header schema

/// One entry of the `tensors` table after the schema pass (numbers not yet range-checked).
struct TensorEntry {
    var name: String
    var path: String
    /// `nil` for an unknown name (reported by the per-tensor pass).
    var dtype: DType?
    var dtypeName: String
    var shape: [Int]
    var offset: Int
    var length: Int
}

/// Typed access to JSON with field paths for errors.
enum Field {
    static func member(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    static func keyed(_ path: String, _ key: String) -> String { "\(path)[\(JSONText.string(key))]" }
    static func indexed(_ path: String, _ index: Int) -> String { "\(path)[\(index)]" }

    static func object(_ value: JSONValue, _ path: String) throws(ArtifactError) -> [String: JSONValue] {
        guard case .object(let members) = value else {
            throw .wrongType(path, expected: "an object", actual: value.kindName)
        }
        return members
    }

    static func array(_ value: JSONValue, _ path: String) throws(ArtifactError) -> [JSONValue] {
        guard case .array(let elements) = value else {
            throw .wrongType(path, expected: "an array", actual: value.kindName)
        }
        return elements
    }

    static func string(_ value: JSONValue, _ path: String) throws(ArtifactError) -> String {
        guard case .string(let text) = value else {
            throw .wrongType(path, expected: "a string", actual: value.kindName)
        }
        return text
    }

    static func integer(_ value: JSONValue, _ path: String) throws(ArtifactError) -> Int {
        guard case .number(let text) = value else {
            throw .wrongType(path, expected: "an integer", actual: value.kindName)
        }
        if let exact = Int(text) { return exact }
        // Integral values written with a fraction or exponent ("64.0", "1e3") are accepted when
        // exactly representable; everything else is refused rather than rounded.
        if let double = Double(text), double.isFinite, double.rounded() == double, abs(double) <= 9_007_199_254_740_992,
            let exact = Int(exactly: double)
        {
            return exact
        }
        throw .notAnInteger(path, value: text)
    }

    static func float(_ value: JSONValue, _ path: String) throws(ArtifactError) -> Float {
        guard case .number(let text) = value, let number = Float(text) else {
            throw .wrongType(path, expected: "a number", actual: value.kindName)
        }
        return number
    }

    static func strings(_ value: JSONValue, _ path: String) throws(ArtifactError) -> [String] {
        var result: [String] = []
        for (index, element) in try array(value, path).enumerated() {
            result.append(try string(element, indexed(path, index)))
        }
        return result
    }

    static func integers(_ value: JSONValue, _ path: String) throws(ArtifactError) -> [Int] {
        var result: [Int] = []
        for (index, element) in try array(value, path).enumerated() {
            result.append(try integer(element, indexed(path, index)))
        }
        return result
    }

    /// A member that must be present (`null` counts as absent).
    static func required(_ members: [String: JSONValue], _ key: String, _ path: String) throws(ArtifactError)
        -> JSONValue
    {
        guard let value = members[key], !isNull(value) else { throw .missingField(member(path, key)) }
        return value
    }

    /// A member that may be absent (or `null`).
    static func optional(_ members: [String: JSONValue], _ key: String) -> JSONValue? {
        guard let value = members[key], !isNull(value) else { return nil }
        return value
    }

    static func isNull(_ value: JSONValue) -> Bool {
        if case .null = value { return true }
        return false
    }
}

/// An attribute whose tensors are still names in the tensors table.
enum PendingAttribute {
    case ready(Attribute)
    case tensor(String, path: String)
    case tensors([String], path: String)
}

struct PendingNode {
    var node: Node
    var attributes: [String: PendingAttribute]
}

struct PendingGraph {
    var name: String
    var opsetImports: [String: Int]
    var inputs: [ValueInfo]
    var outputs: [ValueInfo]
    var initializers: [String]
    var nodes: [PendingNode]

    init(_ value: JSONValue, options: ArtifactReader.Options) throws(ArtifactError) {
        let path = "graph"
        let members = try Field.object(value, path)
        name =
            try Field.optional(members, "name").map { v throws(ArtifactError) in try Field.string(v, "graph.name") }
            ?? ""
        let opsets = try Field.object(try Field.required(members, "opset_imports", path), "graph.opset_imports")
        opsetImports = [:]
        for (domain, version) in opsets {
            opsetImports[domain] = try Field.integer(version, Field.keyed("graph.opset_imports", domain))
        }
        inputs = try Self.valueInfos(try Field.required(members, "inputs", path), "graph.inputs")
        outputs = try Self.valueInfos(try Field.required(members, "outputs", path), "graph.outputs")
        if let list = Field.optional(members, "initializers") {
            initializers = try Field.strings(list, "graph.initializers")
        } else {
            initializers = []
        }
        let nodeValues = try Field.array(try Field.required(members, "nodes", path), "graph.nodes")
        guard nodeValues.count <= options.maxNodes else {
            throw .limitExceeded("nodes", count: nodeValues.count, limit: options.maxNodes)
        }
        nodes = []
        nodes.reserveCapacity(nodeValues.count)
        for (index, nodeValue) in nodeValues.enumerated() {
            nodes.append(try Self.node(nodeValue, Field.indexed("graph.nodes", index)))
        }
    }

    static func valueInfos(_ value: JSONValue, _ path: String) throws(ArtifactError) -> [ValueInfo] {
        var result: [ValueInfo] = []
        for (index, element) in try Field.array(value, path).enumerated() {
            let elementPath = Field.indexed(path, index)
            let members = try Field.object(element, elementPath)
            let name = try Field.string(
                try Field.required(members, "name", elementPath), Field.member(elementPath, "name"))
            var dtype: DType?
            if let dtypeValue = Field.optional(members, "dtype") {
                let dtypePath = Field.member(elementPath, "dtype")
                let dtypeName = try Field.string(dtypeValue, dtypePath)
                guard let known = DType(rawValue: dtypeName) else { throw .unknownDType(dtypePath, name: dtypeName) }
                dtype = known
            }
            var dimensions: [Dimension]?
            if let shapeValue = Field.optional(members, "shape") {
                let shapePath = Field.member(elementPath, "shape")
                var parsed: [Dimension] = []
                for (axis, dimension) in try Field.array(shapeValue, shapePath).enumerated() {
                    let dimensionPath = Field.indexed(shapePath, axis)
                    if case .string(let symbol) = dimension {
                        parsed.append(.symbolic(symbol))
                    } else {
                        let size = try Field.integer(dimension, dimensionPath)
                        guard size >= 0 else {
                            throw .invalidValue(dimensionPath, reason: "negative dimension \(size)")
                        }
                        parsed.append(.fixed(size))
                    }
                }
                dimensions = parsed
            }
            result.append(ValueInfo(name: name, dtype: dtype, dimensions: dimensions))
        }
        return result
    }

    static func node(_ value: JSONValue, _ path: String) throws(ArtifactError) -> PendingNode {
        let members = try Field.object(value, path)
        let name =
            try Field.optional(members, "name").map { v throws(ArtifactError) in
                try Field.string(v, Field.member(path, "name"))
            } ?? ""
        let op = try Field.string(try Field.required(members, "op", path), Field.member(path, "op"))
        guard !op.isEmpty else { throw .invalidValue(Field.member(path, "op"), reason: "empty operator type") }
        let domain =
            try Field.optional(members, "domain").map { v throws(ArtifactError) in
                try Field.string(v, Field.member(path, "domain"))
            } ?? ""
        let inputs = try Field.strings(try Field.required(members, "inputs", path), Field.member(path, "inputs"))
        let outputs = try Field.strings(try Field.required(members, "outputs", path), Field.member(path, "outputs"))
        var attributes: [String: PendingAttribute] = [:]
        if let attributeValue = Field.optional(members, "attributes") {
            let attributesPath = Field.member(path, "attributes")
            let label = name.isEmpty ? path : name
            for (attributeName, attribute) in try Field.object(attributeValue, attributesPath) {
                attributes[attributeName] = try Self.attribute(
                    attribute, Field.keyed(attributesPath, attributeName), node: label, name: attributeName)
            }
        }
        let node = Node(name: name, opType: op, domain: domain, inputs: inputs, outputs: outputs)
        return PendingNode(node: node, attributes: attributes)
    }

    static func attribute(
        _ value: JSONValue, _ path: String, node: String, name: String
    ) throws(ArtifactError) -> PendingAttribute {
        let members = try Field.object(value, path)
        guard members.count == 1, let (kind, payload) = members.first else {
            throw .invalidValue(
                path, reason: "an attribute is an object with exactly one kind key, found \(members.count) keys")
        }
        let payloadPath = Field.member(path, kind)
        switch kind {
        case "int": return .ready(.int(try Field.integer(payload, payloadPath)))
        case "float": return .ready(.float(try Field.float(payload, payloadPath)))
        case "string": return .ready(.string(try Field.string(payload, payloadPath)))
        case "ints": return .ready(.ints(try Field.integers(payload, payloadPath)))
        case "floats":
            var floats: [Float] = []
            for (index, element) in try Field.array(payload, payloadPath).enumerated() {
                floats.append(try Field.float(element, Field.indexed(payloadPath, index)))
            }
            return .ready(.floats(floats))
        case "strings": return .ready(.strings(try Field.strings(payload, payloadPath)))
        case "tensor": return .tensor(try Field.string(payload, payloadPath), path: payloadPath)
        case "tensors": return .tensors(try Field.strings(payload, payloadPath), path: payloadPath)
        default: throw .unsupportedAttribute(node: node, name: name, kind: kind)
        }
    }

    /// Resolves tensor references and checks the graph's structure.
    func resolve(tensors: [String: Tensor]) throws(ArtifactError) -> Graph {
        var initializerTensors: [String: Tensor] = [:]
        for (index, name) in initializers.enumerated() {
            let path = Field.indexed("graph.initializers", index)
            guard let tensor = tensors[name] else { throw .unknownTensor(path, name: name) }
            guard initializerTensors.updateValue(tensor, forKey: name) == nil else {
                throw .invalidValue(path, reason: "initializer \"\(name)\" is listed twice")
            }
        }
        var resolvedNodes: [Node] = []
        resolvedNodes.reserveCapacity(nodes.count)
        for pending in nodes {
            var node = pending.node
            for (attributeName, attribute) in pending.attributes {
                switch attribute {
                case .ready(let value): node.attributes[attributeName] = value
                case .tensor(let tensorName, let path):
                    guard let tensor = tensors[tensorName] else { throw .unknownTensor(path, name: tensorName) }
                    node.attributes[attributeName] = .tensor(tensor)
                case .tensors(let names, let path):
                    var list: [Tensor] = []
                    for (index, tensorName) in names.enumerated() {
                        guard let tensor = tensors[tensorName] else {
                            throw .unknownTensor(Field.indexed(path, index), name: tensorName)
                        }
                        list.append(tensor)
                    }
                    node.attributes[attributeName] = .tensors(list)
                }
            }
            resolvedNodes.append(node)
        }
        nameUnnamedNodes(&resolvedNodes)
        let graph = Graph(
            name: name, inputs: inputs, outputs: outputs, nodes: resolvedNodes, initializers: initializerTensors,
            opsetImports: opsetImports)
        do {
            _ = try Topology.sortedNodeIndices(of: graph)
        } catch {
            throw .graph(error)
        }
        return graph
    }

    /// Gives every unnamed node the name `"<op>_<index>"` (as the ONNX reader does), with a
    /// suffix if that name is taken.
    func nameUnnamedNodes(_ nodes: inout [Node]) {
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
}

struct PendingGolden {
    var inputs: [(name: String, tensor: String, path: String)]
    var outputs: [(name: String, tensor: String, path: String)]
    var tolerance: (relative: Float, absolute: Float)
    var source: String

    init(_ value: JSONValue, _ path: String) throws(ArtifactError) {
        let members = try Field.object(value, path)
        func references(_ key: String) throws(ArtifactError) -> [(name: String, tensor: String, path: String)] {
            let mapPath = Field.member(path, key)
            let map = try Field.object(try Field.required(members, key, path), mapPath)
            var result: [(name: String, tensor: String, path: String)] = []
            for (name, tensorName) in map.sorted(by: { $0.key < $1.key }) {
                let referencePath = Field.keyed(mapPath, name)
                result.append((name, try Field.string(tensorName, referencePath), referencePath))
            }
            return result
        }
        inputs = try references("inputs")
        outputs = try references("outputs")
        let tolerancePath = Field.member(path, "tolerance")
        let toleranceMembers = try Field.object(try Field.required(members, "tolerance", path), tolerancePath)
        var bounds: [Float] = []
        for key in ["relative", "absolute"] {
            let boundPath = Field.member(tolerancePath, key)
            let bound = try Field.float(try Field.required(toleranceMembers, key, tolerancePath), boundPath)
            guard bound.isFinite, bound >= 0 else {
                throw .invalidValue(boundPath, reason: "a tolerance must be finite and non-negative, found \(bound)")
            }
            bounds.append(bound)
        }
        tolerance = (bounds[0], bounds[1])
        source =
            try Field.optional(members, "source").map { v throws(ArtifactError) in
                try Field.string(v, Field.member(path, "source"))
            } ?? ""
    }

    func resolve(index: Int, tensors: [String: Tensor], graph: Graph) throws(ArtifactError) -> GoldenExample {
        let inputNames = Set(graph.inputs.map(\.name))
        let outputNames = Set(graph.outputs.map(\.name))
        var inputTensors: [String: Tensor] = [:]
        for reference in inputs {
            guard inputNames.contains(reference.name) else {
                throw .invalidValue(reference.path, reason: "\"\(reference.name)\" is not a graph input")
            }
            guard let tensor = tensors[reference.tensor] else {
                throw .unknownTensor(reference.path, name: reference.tensor)
            }
            inputTensors[reference.name] = tensor
        }
        var outputTensors: [String: Tensor] = [:]
        for reference in outputs {
            guard outputNames.contains(reference.name) else {
                throw .invalidValue(reference.path, reason: "\"\(reference.name)\" is not a graph output")
            }
            guard let tensor = tensors[reference.tensor] else {
                throw .unknownTensor(reference.path, name: reference.tensor)
            }
            outputTensors[reference.name] = tensor
        }
        return GoldenExample(inputs: inputTensors, outputs: outputTensors, tolerance: tolerance, source: source)
    }
}

/// The header after the schema pass: every field present with the right JSON type.
struct HeaderSchema {
    var formatVersion: ArtifactFormatVersion
    var graph: PendingGraph
    var tensors: [TensorEntry]
    var dataLength: Int
    var hasPreprocess: Bool
    var labels: [String]?
    var outputKind: String?
    var float16Weights: Bool
    var goldens: [PendingGolden]
    var metadata: [String: String]
    var dataSHA256: String

    init(_ root: JSONValue, binaryMajor: UInt32, options: ArtifactReader.Options) throws(ArtifactError) {
        let members = try Field.object(root, "header")

        let format = try Field.object(try Field.required(members, "format", ""), "format")
        let formatName = try Field.string(try Field.required(format, "name", "format"), "format.name")
        guard formatName == "apus" else {
            throw .invalidValue("format.name", reason: "expected \"apus\", found \"\(formatName)\"")
        }
        let version = try Field.integers(try Field.required(format, "version", "format"), "format.version")
        guard version.count == 2 else {
            throw .invalidValue("format.version", reason: "expected [major, minor], found \(version.count) numbers")
        }
        guard version[0] == Int(binaryMajor) else { throw .versionMismatch(binary: binaryMajor, header: version[0]) }
        guard version[1] >= 0 else { throw .invalidValue("format.version[1]", reason: "negative minor version") }
        formatVersion = ArtifactFormatVersion(major: version[0], minor: version[1])

        graph = try PendingGraph(try Field.required(members, "graph", ""), options: options)

        let table = try Field.object(try Field.required(members, "tensors", ""), "tensors")
        guard table.count <= options.maxTensors else {
            throw .limitExceeded("tensors", count: table.count, limit: options.maxTensors)
        }
        tensors = []
        tensors.reserveCapacity(table.count)
        for (name, value) in table.sorted(by: { $0.key < $1.key }) {
            let path = Field.keyed("tensors", name)
            let entry = try Field.object(value, path)
            let dtypePath = Field.member(path, "dtype")
            let dtypeName = try Field.string(try Field.required(entry, "dtype", path), dtypePath)
            let shape = try Field.integers(try Field.required(entry, "shape", path), Field.member(path, "shape"))
            let offset = try Field.integer(try Field.required(entry, "offset", path), Field.member(path, "offset"))
            let length = try Field.integer(try Field.required(entry, "length", path), Field.member(path, "length"))
            tensors.append(
                TensorEntry(
                    name: name, path: path, dtype: DType(rawValue: dtypeName), dtypeName: dtypeName, shape: shape,
                    offset: offset, length: length))
        }

        dataLength = try Field.integer(try Field.required(members, "data_length", ""), "data_length")
        guard dataLength >= 0 else { throw .invalidValue("data_length", reason: "negative length \(dataLength)") }

        hasPreprocess = Field.optional(members, "preprocess") != nil
        labels = try Field.optional(members, "labels").map { v throws(ArtifactError) in try Field.strings(v, "labels") }
        outputKind = try Field.optional(members, "output_kind").map { v throws(ArtifactError) in
            try Field.string(v, "output_kind")
        }
        float16Weights = false
        if let flag = Field.optional(members, "float16_weights") {
            guard case .bool(let value) = flag else {
                throw .wrongType("float16_weights", expected: "a boolean", actual: flag.kindName)
            }
            float16Weights = value
        }
        goldens = []
        if let goldenValue = Field.optional(members, "golden") {
            for (index, example) in try Field.array(goldenValue, "golden").enumerated() {
                goldens.append(try PendingGolden(example, Field.indexed("golden", index)))
            }
        }
        metadata = [:]
        if let metadataValue = Field.optional(members, "metadata") {
            for (key, value) in try Field.object(metadataValue, "metadata") {
                metadata[key] = try Field.string(value, Field.keyed("metadata", key))
            }
        }
        let integrity = try Field.object(try Field.required(members, "integrity", ""), "integrity")
        let algorithm = try Field.string(try Field.required(integrity, "algorithm", "integrity"), "integrity.algorithm")
        guard algorithm == "sha256" else { throw .unsupportedIntegrityAlgorithm(algorithm) }
        dataSHA256 = try Field.string(
            try Field.required(integrity, "data_sha256", "integrity"), "integrity.data_sha256")
        guard dataSHA256.utf8.count == 64,
            dataSHA256.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else {
            throw .invalidValue("integrity.data_sha256", reason: "expected 64 lower-case hex digits")
        }
    }
}
