import ApusTensor
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes `.apus` files (see Docs/artifact-format.md).
///
/// The output is deterministic: tensors are laid out in sorted name order, JSON keys are sorted,
/// so the same contents always produce the same bytes. The file is written to a temporary file
/// beside the destination and renamed into place, so readers never see a half-written file.
///
/// ```swift
/// try ArtifactWriter.write(ArtifactContents(graph: graph, labels: labels), to: url)
/// ```
public enum ArtifactWriter {
    /// Writes `contents` to `url`, replacing any existing file atomically.
    ///
    /// - Throws: ``ArtifactError`` for contents the format cannot hold (graph attributes, an
    ///   invalid graph, preprocess text that is not JSON) or for I/O failures.
    public static func write(_ contents: ArtifactContents, to url: URL) throws(ArtifactError) {
        let (header, layout, dataLength) = try encode(contents)
        try writeAtomically(header: header, layout: layout, dataLength: dataLength, to: url.path)
    }

    /// Builds the whole file in memory (small artifacts: tests, the fuzzer's seed corpus).
    public static func encodedData(_ contents: ArtifactContents) throws(ArtifactError) -> Data {
        let (header, layout, dataLength) = try encode(contents)
        var data = Data(header)
        data.reserveCapacity(header.count + dataLength)
        var position = 0
        for (_, tensor, offset) in layout {
            data.append(Data(count: offset - position))
            data.append(tensor.rawPointer.assumingMemoryBound(to: UInt8.self), count: tensor.byteCount)
            position = offset + tensor.byteCount
        }
        data.append(Data(count: dataLength - position))
        return data
    }

    typealias Layout = [(name: String, tensor: Tensor, offset: Int)]

    /// The preamble + JSON header + padding, and where each tensor goes in the data section.
    static func encode(_ contents: ArtifactContents) throws(ArtifactError) -> ([UInt8], Layout, Int) {
        let graph = contents.graph
        do {
            _ = try Topology.sortedNodeIndices(of: graph)
        } catch {
            throw .graph(error)
        }

        // Name every tensor: initializers by their value name, tensor attributes and golden
        // tensors by where they are used, made unique with a numeric suffix.
        var tensors: [String: Tensor] = graph.initializers
        func add(_ tensor: Tensor, preferring name: String) -> String {
            var candidate = name
            var suffix = 1
            while tensors[candidate] != nil {
                candidate = "\(name).\(suffix)"
                suffix += 1
            }
            tensors[candidate] = tensor
            return candidate
        }
        var nodeAttributesJSON: [String] = []
        for node in graph.nodes {
            var attributeEntries: [String] = []
            for (name, attribute) in node.attributes.sorted(by: { $0.key < $1.key }) {
                let payload: String
                switch attribute {
                case .int(let value): payload = "{\"int\": \(value)}"
                case .float(let value): payload = "{\"float\": \(JSONText.number(value))}"
                case .string(let value): payload = "{\"string\": \(JSONText.string(value))}"
                case .ints(let values):
                    payload = "{\"ints\": [" + values.map(String.init).joined(separator: ", ") + "]}"
                case .floats(let values):
                    payload = "{\"floats\": [" + values.map(JSONText.number).joined(separator: ", ") + "]}"
                case .strings(let values): payload = "{\"strings\": \(JSONText.strings(values))}"
                case .tensor(let tensor):
                    payload = "{\"tensor\": \(JSONText.string(add(tensor, preferring: "\(node.name).\(name)")))}"
                case .tensors(let list):
                    var names: [String] = []
                    for (index, tensor) in list.enumerated() {
                        names.append(add(tensor, preferring: "\(node.name).\(name).\(index)"))
                    }
                    payload = "{\"tensors\": \(JSONText.strings(names))}"
                case .graph, .graphs:
                    throw .unsupportedAttribute(node: node.name, name: name, kind: attribute.kindName)
                }
                attributeEntries.append("\(JSONText.string(name)): \(payload)")
            }
            nodeAttributesJSON.append("{" + attributeEntries.joined(separator: ", ") + "}")
        }
        var goldensJSON: [String] = []
        for (index, golden) in contents.goldens.enumerated() {
            func references(_ map: [String: Tensor]) -> String {
                let entries = map.sorted(by: { $0.key < $1.key }).map { name, tensor in
                    "\(JSONText.string(name)): \(JSONText.string(add(tensor, preferring: "golden.\(index).\(name)")))"
                }
                return "{" + entries.joined(separator: ", ") + "}"
            }
            let (relative, absolute) = golden.tolerance
            guard relative.isFinite, relative >= 0, absolute.isFinite, absolute >= 0 else {
                throw .invalidValue("golden[\(index)].tolerance", reason: "must be finite and non-negative")
            }
            goldensJSON.append(
                "{\"inputs\": \(references(golden.inputs)), \"outputs\": \(references(golden.outputs)), "
                    + "\"tolerance\": {\"relative\": \(JSONText.number(relative)), \"absolute\": \(JSONText.number(absolute))}, "
                    + "\"source\": \(JSONText.string(golden.source))}")
        }

        // Data section layout: sorted names, each tensor at the next multiple of 64.
        var layout: Layout = []
        var position = 0
        var tableEntries: [String] = []
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            layout.append((name, tensor, position))
            let shape = "[" + tensor.shape.dimensions.map(String.init).joined(separator: ", ") + "]"
            tableEntries.append(
                "    \(JSONText.string(name)): {\"dtype\": \"\(tensor.dtype.rawValue)\", \"shape\": \(shape), "
                    + "\"offset\": \(position), \"length\": \(tensor.byteCount)}")
            guard let next = ArtifactReader.roundUp(position + tensor.byteCount) else {
                throw .invalidValue("tensors", reason: "data section larger than Int.max")
            }
            position = next
        }
        let dataLength = position

        var hasher = SHA256()
        var hashed = 0
        for (_, tensor, offset) in layout {
            hasher.updateWithZeros(count: offset - hashed)
            hasher.update(bytes: UnsafeRawBufferPointer(start: tensor.rawPointer, count: tensor.byteCount))
            hashed = offset + tensor.byteCount
        }
        hasher.updateWithZeros(count: dataLength - hashed)
        let digest = SHA256.hexString(hasher.finalize())

        // The header JSON, keys in a fixed order.
        func valueInfos(_ infos: [ValueInfo]) -> String {
            let entries = infos.map { info in
                var fields = ["\"name\": \(JSONText.string(info.name))"]
                if let dtype = info.dtype { fields.append("\"dtype\": \"\(dtype.rawValue)\"") }
                if let dimensions = info.dimensions {
                    let shape = dimensions.map { dimension in
                        switch dimension {
                        case .fixed(let size): String(size)
                        case .symbolic(let symbol): JSONText.string(symbol)
                        }
                    }
                    fields.append("\"shape\": [" + shape.joined(separator: ", ") + "]")
                }
                return "{" + fields.joined(separator: ", ") + "}"
            }
            return "[" + entries.joined(separator: ", ") + "]"
        }
        var nodesJSON: [String] = []
        for (index, node) in graph.nodes.enumerated() {
            nodesJSON.append(
                "      {\"name\": \(JSONText.string(node.name)), \"op\": \(JSONText.string(node.opType)), "
                    + "\"domain\": \(JSONText.string(node.domain)), \"inputs\": \(JSONText.strings(node.inputs)), "
                    + "\"outputs\": \(JSONText.strings(node.outputs)), \"attributes\": \(nodeAttributesJSON[index])}")
        }
        let opsets = graph.opsetImports.sorted(by: { $0.key < $1.key }).map {
            "\(JSONText.string($0.key)): \($0.value)"
        }
        var parts: [String] = []
        parts.append(
            "  \"format\": {\"name\": \"apus\", \"version\": [\(ArtifactFormatVersion.current.major), \(ArtifactFormatVersion.current.minor)]}"
        )
        parts.append(
            "  \"graph\": {\n    \"name\": \(JSONText.string(graph.name)),\n"
                + "    \"opset_imports\": {" + opsets.joined(separator: ", ") + "},\n"
                + "    \"inputs\": \(valueInfos(graph.inputs)),\n"
                + "    \"outputs\": \(valueInfos(graph.outputs)),\n"
                + "    \"initializers\": \(JSONText.strings(graph.initializers.keys.sorted())),\n"
                + "    \"nodes\": [\n" + nodesJSON.joined(separator: ",\n") + "\n    ]\n  }")
        parts.append("  \"tensors\": {\n" + tableEntries.joined(separator: ",\n") + "\n  }")
        parts.append("  \"data_length\": \(dataLength)")
        if let preprocess = contents.preprocessJSON {
            parts.append("  \"preprocess\": " + (try validatedJSONText(preprocess)))
        }
        if let labels = contents.labels { parts.append("  \"labels\": \(JSONText.strings(labels))") }
        if let outputKind = contents.outputKind { parts.append("  \"output_kind\": \(JSONText.string(outputKind))") }
        if contents.float16Weights { parts.append("  \"float16_weights\": true") }
        if !goldensJSON.isEmpty {
            parts.append("  \"golden\": [\n    " + goldensJSON.joined(separator: ",\n    ") + "\n  ]")
        }
        let metadata = contents.metadata.sorted(by: { $0.key < $1.key }).map {
            "\(JSONText.string($0.key)): \(JSONText.string($0.value))"
        }
        parts.append("  \"metadata\": {" + metadata.joined(separator: ", ") + "}")
        parts.append("  \"integrity\": {\"algorithm\": \"sha256\", \"data_sha256\": \"\(digest)\"}")
        let json = Array(("{\n" + parts.joined(separator: ",\n") + "\n}\n").utf8)

        var header: [UInt8] = ArtifactReader.magic
        withUnsafeBytes(of: ArtifactReader.supportedMajorVersion.littleEndian) { header.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { header.append(contentsOf: $0) }
        header.append(contentsOf: json)
        guard let dataStart = ArtifactReader.roundUp(header.count) else {
            throw .invalidValue("header", reason: "too large")
        }
        header.append(contentsOf: repeatElement(0, count: dataStart - header.count))
        return (header, layout, dataLength)
    }

    /// The preprocess spec's text without surrounding whitespace, after checking that it parses.
    static func validatedJSONText(_ data: Data) throws(ArtifactError) -> String {
        let bytes = [UInt8](data)
        let result: Result<String, ArtifactError> = bytes.withUnsafeBytes { buffer in
            if let bad = firstInvalidUTF8Offset(buffer) { return .failure(.invalidUTF8(offset: bad)) }
            var parser = JSONParser(bytes: buffer, maxDepth: 63)
            if let (depth, offset) = jsonNestingDepth(buffer, limit: 63) {
                return .failure(.jsonTooDeep(depth: depth, limit: 63, offset: offset))
            }
            do {
                _ = try parser.parseDocument()
            } catch let error as JSONSyntaxError {
                return .failure(.invalidJSON(offset: error.offset, reason: "preprocess: \(error.reason)"))
            } catch {
                return .failure(.invalidJSON(offset: 0, reason: "preprocess: \(error)"))
            }
            return .success(String(decoding: buffer, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return try result.get()
    }

    /// Writes to a temporary file in the destination's folder, syncs it and renames it over `path`.
    static func writeAtomically(header: [UInt8], layout: Layout, dataLength: Int, to path: String) throws(ArtifactError)
    {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .io(path: temporary, operation: "create", errno: errno) }
        var succeeded = false
        defer {
            if !succeeded {
                close(descriptor)
                unlink(temporary)
            }
        }
        /// Writes all bytes; returns 0 or the errno of the failure.
        func writeAll(_ pointer: UnsafeRawPointer?, _ count: Int) -> Int32 {
            guard var pointer else { return 0 }
            var remaining = count
            while remaining > 0 {
                let written = posixWrite(descriptor, pointer, Swift.min(remaining, 1 << 30))
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                pointer += written
                remaining -= written
            }
            return 0
        }
        let zeros = [UInt8](repeating: 0, count: ArtifactReader.alignment)
        func writeZeros(_ count: Int) -> Int32 {
            zeros.withUnsafeBytes { buffer in
                var remaining = count
                while remaining > 0 {
                    let chunk = Swift.min(remaining, buffer.count)
                    let code = writeAll(buffer.baseAddress, chunk)
                    if code != 0 { return code }
                    remaining -= chunk
                }
                return 0
            }
        }
        var code = header.withUnsafeBytes { writeAll($0.baseAddress, $0.count) }
        var position = 0
        for (_, tensor, offset) in layout where code == 0 {
            code = writeZeros(offset - position)
            if code == 0 { code = writeAll(tensor.rawPointer, tensor.byteCount) }
            position = offset + tensor.byteCount
        }
        if code == 0 { code = writeZeros(dataLength - position) }
        guard code == 0 else { throw .io(path: temporary, operation: "write", errno: code) }
        guard fsync(descriptor) == 0 else { throw .io(path: temporary, operation: "fsync", errno: errno) }
        succeeded = true
        guard close(descriptor) == 0 else {
            unlink(temporary)
            throw .io(path: temporary, operation: "close", errno: errno)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw .io(path: path, operation: "rename into", errno: code)
        }
    }
}

/// `write(2)`, named apart from ``ArtifactWriter/write(_:to:)``.
private func posixWrite(_ descriptor: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.write(descriptor, pointer, count)
    #else
        Darwin.write(descriptor, pointer, count)
    #endif
}
