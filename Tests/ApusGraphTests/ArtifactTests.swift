import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

@Suite struct ArtifactSHA256Tests {
    /// The portable code, and the SHA extensions when the CPU has them.
    static let paths = SHA256.hardwareAvailable ? [false, true] : [false]

    static func digest(_ bytes: [UInt8], hardware: Bool) -> String {
        var hasher = SHA256(hardware: hardware)
        bytes.withUnsafeBytes { hasher.update(bytes: $0) }
        return SHA256.hexString(hasher.finalize())
    }

    // FIPS 180-2 / NIST CSRC example digests.
    @Test(arguments: paths) func nistVectors(hardware: Bool) {
        #expect(
            Self.digest([], hardware: hardware) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            Self.digest(Array("abc".utf8), hardware: hardware)
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Self.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8), hardware: hardware)
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            Self.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000), hardware: hardware)
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The SHA extensions give the portable code's digest for every length around the block and
    /// padding boundaries, from unaligned starts.
    @Test(.enabled(if: SHA256.hardwareAvailable)) func extensionsMatchPortableCode() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let bytes = (0..<5000).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4093] {
            for offset in [0, 1, 3] {
                let digests = [true, false].map { hardware in
                    var hasher = SHA256(hardware: hardware)
                    bytes.withUnsafeBytes {
                        hasher.update(bytes: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + length]))
                    }
                    return hasher.finalize()
                }
                #expect(digests[0] == digests[1], "length \(length) offset \(offset)")
            }
        }
    }

    @Test func incrementalUpdatesMatchOneShot() {
        let message = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let expected = SHA256.hash(message)
        for chunk in [1, 7, 63, 64, 65, 200] {
            var hasher = SHA256()
            var start = 0
            message.withUnsafeBytes { buffer in
                while start < buffer.count {
                    let end = min(start + chunk, buffer.count)
                    hasher.update(bytes: UnsafeRawBufferPointer(rebasing: buffer[start..<end]))
                    start = end
                }
            }
            #expect(hasher.finalize() == expected, "chunk \(chunk)")
        }
        var zeros = SHA256()
        zeros.updateWithZeros(count: 5000)
        #expect(zeros.finalize() == SHA256.hash([UInt8](repeating: 0, count: 5000)))
    }
}

@Suite struct ArtifactReadWriteTests {
    @Test func readsHandBuiltFile() throws {
        let artifact = try ArtifactReader.read(data: ArtifactFixture.file(), options: .init(verifyChecksum: true))
        let graph = artifact.graph
        #expect(graph.name == "g")
        #expect(graph.opsetImports == ["": 18])
        #expect(graph.inputs == [ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(2)])])
        #expect(graph.nodes.map(\.opType) == ["Mul", "Add"])
        #expect(graph.nodes[1].inputs == ["t", "b"])
        #expect(try graph.initializers["w"]?.scalars(as: Float.self) == [1.5, -2])
        #expect(try graph.initializers["b"]?.scalars(as: Float.self) == [0.25, 4])
        #expect(artifact.labels == ["left", "right"])
        #expect(artifact.outputKind == "logits")
        #expect(artifact.metadata == ["producer": "hand-written"])
        #expect(artifact.formatVersion == ArtifactFormatVersion(major: 1, minor: 0))
        #expect(
            artifact.preprocessJSON.map { String(decoding: $0, as: UTF8.self) }
                == "{\"steps\": [{\"op\": \"to_tensor\"}]}")
        #expect(artifact.goldens.isEmpty)
    }

    @Test func newerMinorVersionAndUnknownFieldsAreAccepted() throws {
        let json = ArtifactFixture.json(
            replacing: "\"version\": [1, 0]}", with: "\"version\": [1, 7], \"extra\": true}"
        )
        .replacingOccurrences(of: "\"data_length\"", with: "\"future\": {\"a\": [1, {\"b\": null}]}, \"data_length\"")
        .replacingOccurrences(of: "\"op\": \"Mul\"", with: "\"op\": \"Mul\", \"doc\": \"ignored\"")
        let artifact = try ArtifactReader.read(data: ArtifactFixture.file(json: json))
        #expect(artifact.formatVersion.minor == 7)
        #expect(artifact.graph.nodes.count == 2)
    }

    @Test func integralNumbersWithExponentAreIntegers() throws {
        let json = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": 6.4e1")
        let artifact = try ArtifactReader.read(data: ArtifactFixture.file(json: json))
        #expect(try artifact.graph.initializers["b"]?.scalars(as: Float.self) == [0.25, 4])
    }

    /// A graph with every attribute kind, initializers of every dtype (including an empty tensor
    /// and a scalar), goldens, labels, metadata and a preprocess spec.
    static func richContents() -> ArtifactContents {
        let float32 = Tensor(shape: [2, 3], scalars: [Float(1), -2.5, 3.25, .infinity, -0.0, .leastNonzeroMagnitude])
        let float16 = Tensor(shape: [4], scalars: [Float16(1), Float16(-0.5), Float16(65504), Float16(0.000061)])
        let int64 = Tensor(shape: [2], scalars: [Int64.min, Int64.max])
        let int32 = Tensor(shape: [3], scalars: [Int32(-7), 0, Int32.max])
        let int8 = Tensor(shape: [5], scalars: [Int8(-128), -1, 0, 1, 127])
        let uint8 = Tensor(shape: [7], scalars: (0..<7).map { UInt8($0 * 40) })
        let bool = Tensor(shape: [2], scalars: [true, false])
        let empty = Tensor(shape: [0, 3], scalars: [Float]())
        let scalar = Tensor(scalar: Int64(42))
        let attributeTensor = Tensor(shape: [3], scalars: [Float(0.5), 1.5, 2.5])
        let node = Node(
            name: "mul", opType: "Mul", inputs: ["x", "w_f32"], outputs: ["t"],
            attributes: [
                "i": .int(-3), "f": .float(0.1), "s": .string("quote \" back\\slash\nnewline é 🦜"),
                "is": .ints([1, -2, Int.max]), "fs": .floats([0.5, -1e-7, 3.4e38]), "ss": .strings(["a", "", "c"]),
                "t": .tensor(attributeTensor), "ts": .tensors([int32, bool]),
            ])
        let graph = Graph(
            name: "rich",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                node, Node(name: "id", opType: "FusedIdentity", domain: "ai.apus", inputs: ["t", ""], outputs: ["y"]),
            ],
            initializers: [
                "w_f32": float32, "w_f16": float16, "w_i64": int64, "w_i32": int32, "w_i8": int8, "w_u8": uint8,
                "w_bool": bool, "w_empty": empty, "w_scalar": scalar,
            ],
            opsetImports: ["": 18, "ai.apus": 1])
        let golden = GoldenExample(
            inputs: ["x": Tensor(shape: [1, 3], scalars: [Float(1), 2, 3])],
            outputs: ["y": Tensor(shape: [1, 3], scalars: [Float(1), -5, 9.75])], tolerance: (1e-4, 1e-5),
            source: "pytorch")
        return ArtifactContents(
            graph: graph,
            preprocessJSON: Data(#"{"steps": [{"op": "resize", "size": [256], "antialias": true}]}"#.utf8),
            labels: ["tench", "goldfish", "naïve"], outputKind: "logits", goldens: [golden],
            metadata: ["producer": "apus tests", "created": "2026-11-26T12:00:00Z"])
    }

    static func expectAttributesEqual(
        _ a: Attribute?, _ b: Attribute?, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        switch (a, b) {
        case (.int(let x)?, .int(let y)?): #expect(x == y, sourceLocation: sourceLocation)
        case (.float(let x)?, .float(let y)?): #expect(x.bitPattern == y.bitPattern, sourceLocation: sourceLocation)
        case (.string(let x)?, .string(let y)?): #expect(x == y, sourceLocation: sourceLocation)
        case (.ints(let x)?, .ints(let y)?): #expect(x == y, sourceLocation: sourceLocation)
        case (.floats(let x)?, .floats(let y)?):
            #expect(x.map(\.bitPattern) == y.map(\.bitPattern), sourceLocation: sourceLocation)
        case (.strings(let x)?, .strings(let y)?): #expect(x == y, sourceLocation: sourceLocation)
        case (.tensor(let x)?, .tensor(let y)?): #expect(x.isBitwiseEqual(to: y), sourceLocation: sourceLocation)
        case (.tensors(let x)?, .tensors(let y)?):
            #expect(x.count == y.count, sourceLocation: sourceLocation)
            for (p, q) in zip(x, y) { #expect(p.isBitwiseEqual(to: q), sourceLocation: sourceLocation) }
        default:
            Issue.record(
                "attributes differ: \(String(describing: a)) vs \(String(describing: b))",
                sourceLocation: sourceLocation)
        }
    }

    @Test func roundTripIsExactAndMapped() throws {
        let contents = Self.richContents()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("apus-artifact-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("rich.apus")
        try ArtifactWriter.write(contents, to: url)
        // Nothing but the artifact is left in the folder (the temporary file was renamed).
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["rich.apus"])

        let bytes = try Data(contentsOf: url)
        #expect(bytes == (try ArtifactWriter.encodedData(contents)), "writing is deterministic")
        #expect(Array(bytes.prefix(8)) == [0x41, 0x50, 0x55, 0x53, 1, 0, 0, 0])
        #expect(bytes.count % 64 == 0)

        let artifact = try ArtifactReader.read(contentsOf: url, options: .init(verifyChecksum: true))
        let original = contents.graph
        let read = artifact.graph
        #expect(read.name == original.name)
        #expect(read.inputs == original.inputs)
        #expect(read.outputs == original.outputs)
        #expect(read.opsetImports == original.opsetImports)
        #expect(read.nodes.count == original.nodes.count)
        for (p, q) in zip(read.nodes, original.nodes) {
            #expect(p.name == q.name && p.opType == q.opType && p.domain == q.domain)
            #expect(p.inputs == q.inputs && p.outputs == q.outputs)
            #expect(Set(p.attributes.keys) == Set(q.attributes.keys))
            for key in q.attributes.keys { Self.expectAttributesEqual(p.attributes[key], q.attributes[key]) }
        }
        #expect(Set(read.initializers.keys) == Set(original.initializers.keys))
        let section = artifact.dataSection
        for (name, tensor) in original.initializers {
            let loaded = try #require(read.initializers[name])
            #expect(loaded.isBitwiseEqual(to: tensor), "\(name)")
            #expect(loaded.storage.ownsMemory == false, "\(name) must wrap the mapping")
            let address = UInt(bitPattern: loaded.rawPointer)
            let start = UInt(bitPattern: section.baseAddress)
            #expect(
                address >= start && address <= start + UInt(section.byteCount), "\(name) points into the data section")
            #expect((address - start) % 64 == 0)
        }
        #expect(artifact.labels == contents.labels)
        #expect(artifact.outputKind == contents.outputKind)
        #expect(artifact.metadata == contents.metadata)
        #expect(artifact.preprocessJSON == contents.preprocessJSON)
        #expect(artifact.goldens.count == 1)
        let golden = try #require(artifact.goldens.first)
        #expect(golden.source == "pytorch")
        #expect(golden.tolerance.relative == 1e-4 && golden.tolerance.absolute == 1e-5)
        let expectedX = try #require(contents.goldens[0].inputs["x"])
        let expectedY = try #require(contents.goldens[0].outputs["y"])
        #expect(golden.inputs["x"]?.isBitwiseEqual(to: expectedX) == true)
        #expect(golden.outputs["y"]?.isBitwiseEqual(to: expectedY) == true)

        // The in-memory reader agrees, and rewriting what was read gives the same bytes.
        let fromData = try ArtifactReader.read(data: bytes, options: .init(verifyChecksum: true))
        #expect(fromData.dataSHA256 == artifact.dataSHA256)
        #expect(try ArtifactWriter.encodedData(ArtifactContents(artifact)) == bytes)
    }

    @Test func writerRefusesGraphAttributes() {
        var graph = Graph(inputs: [ValueInfo(name: "c", dtype: .bool, dimensions: [])], outputs: [])
        graph.outputs = [ValueInfo(name: "y", dtype: nil, dimensions: nil)]
        graph.nodes = [
            Node(name: "if", opType: "If", inputs: ["c"], outputs: ["y"], attributes: ["then_branch": .graph(Graph())])
        ]
        let error = #expect(throws: ArtifactError.self) {
            try ArtifactWriter.encodedData(ArtifactContents(graph: graph))
        }
        guard case .unsupportedAttribute("if", "then_branch", "graph")? = error else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
    }

    @Test func writerRefusesInvalidGraphsAndPreprocess() {
        let dangling = Graph(outputs: [ValueInfo(name: "y", dtype: nil, dimensions: nil)])
        #expect(throws: ArtifactError.self) { try ArtifactWriter.encodedData(ArtifactContents(graph: dangling)) }
        let notJSON = ArtifactContents(graph: Graph(), preprocessJSON: Data("{\"steps\": [".utf8))
        #expect(throws: ArtifactError.self) { try ArtifactWriter.encodedData(notJSON) }
    }

    @Test func fileErrorsAndEmptyArtifact() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("apus-artifact-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func readError(_ url: URL) -> ArtifactError? {
            do {
                _ = try ArtifactReader.read(contentsOf: url)
                return nil
            } catch {
                return error
            }
        }
        let missing = folder.appendingPathComponent("missing.apus")
        #expect(readError(missing).map { if case .io(_, "open", ENOENT) = $0 { true } else { false } } == true)
        #expect(readError(folder).map { if case .notARegularFile = $0 { true } else { false } } == true)
        let tiny = folder.appendingPathComponent("tiny.apus")
        try Data("APUS".utf8).write(to: tiny)
        #expect(readError(tiny).map { if case .tooShort(4, 16) = $0 { true } else { false } } == true)
        // No tensors at all: the data section is empty and the file ends at the padded header.
        let empty = folder.appendingPathComponent("empty.apus")
        try ArtifactWriter.write(ArtifactContents(graph: Graph()), to: empty)
        let artifact = try ArtifactReader.read(contentsOf: empty, options: .init(verifyChecksum: true))
        #expect(artifact.dataSHA256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(artifact.graph.nodes.isEmpty && artifact.graph.initializers.isEmpty)
        #expect(try Data(contentsOf: empty).count % 64 == 0)
        // Writing over an existing file replaces it.
        try ArtifactWriter.write(Self.richContents(), to: empty)
        #expect(try ArtifactReader.read(contentsOf: empty).graph.name == "rich")
    }
}

/// Kernels that keep their own packed copy of weights let the originals' pages go: a mapped
/// file's pages come back with the same bytes on the next read, and heap memory is never touched.
@Suite struct ResidentPageReleaseTests {
    @Test func mappedWeightsKeepTheirValues() throws {
        let count = 5 * 4096  // several pages
        let values = (0..<count).map { Float($0) * 0.25 - 7 }
        let weights = Tensor(shape: [count], scalars: values)
        let graph = Graph(
            name: "pages", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(count)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: [.fixed(count)])],
            nodes: [Node(name: "add", opType: "Add", inputs: ["x", "w"], outputs: ["y"])],
            initializers: ["w": weights])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("apus-pages-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("pages.apus")
        try ArtifactWriter.write(ArtifactContents(graph: graph), to: url)
        let artifact = try ArtifactReader.read(contentsOf: url)
        let mapped = try #require(artifact.graph.initializers["w"])
        #expect(!mapped.storage.ownsMemory, "the artifact's weights are a view of the mapping")
        mapped.releaseResidentPages()
        let after = mapped.withUnsafeBufferPointer(as: Float.self) { Array($0) }
        #expect(after == values)
    }

    @Test func heapMemoryIsLeftAlone() {
        let values = (0..<(3 * 4096)).map { Float($0) + 0.5 }
        let tensor = Tensor(shape: [values.count], scalars: values)
        tensor.releaseResidentPages()
        #expect(tensor.withUnsafeBufferPointer(as: Float.self) { Array($0) } == values)
    }
}
