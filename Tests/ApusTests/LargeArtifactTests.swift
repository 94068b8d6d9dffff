import Apus
import Foundation
import Testing

/// A ≥ 1 GB `.apus` file is memory-mapped, not read: loading takes a small fraction of the time
/// reading the file takes, the weights cost no resident memory until used, and the model still
/// reproduces its golden example. Opt-in (`APUS_LARGE_TESTS=1`): it writes 1.07 GB to a
/// temporary folder and runs 268 M multiply-adds of scalar reference arithmetic.
@Suite(.serialized) struct LargeArtifactTests {
    static let enabled = ProcessInfo.processInfo.environment["APUS_LARGE_TESTS"] == "1"
    static let width = 8192
    static let layers = 4

    /// VmRSS of this process in bytes (0 where /proc is missing).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
        }
        return 0
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Writes `x → MatMul(W0) → … → MatMul(W3) → y` with seeded uniform weights of variance
    /// 1 / width (so activations keep their scale), and a golden example whose output is computed
    /// here by a plain scalar loop in Double.
    static func writeArtifact(to url: URL) throws {
        let n = width
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {  // uniform in [-1, 1), 24 random bits
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int32(truncatingIfNeeded: state >> 40) - (1 << 23)) / Float(1 << 23)
        }
        let scale = (3.0 / Float(n)).squareRoot()
        var x = (0..<n).map { _ in next() }
        let input = Tensor(shape: [1, n], scalars: x)
        var initializers: [String: Tensor] = [:]
        var nodes: [Node] = []
        var previous = "x"
        for layer in 0..<layers {
            let weight = try Tensor(zeros: [n, n], dtype: .float32)
            let w = weight.pointer(as: Float.self)
            for i in 0..<(n * n) { w[i] = next() * scale }
            // Reference y[j] = sum_i x[i] * W[i, j], accumulated in Double.
            var y = [Double](repeating: 0, count: n)
            y.withUnsafeMutableBufferPointer { out in
                for i in 0..<n {
                    let xi = Double(x[i])
                    let row = w + i * n
                    for j in 0..<n { out[j] += xi * Double(row[j]) }
                }
            }
            x = y.map { Float($0) }
            let name = "w\(layer)"
            initializers[name] = weight
            let output = layer + 1 == layers ? "y" : "h\(layer)"
            nodes.append(Node(name: "matmul\(layer)", opType: "MatMul", inputs: [previous, name], outputs: [output]))
            previous = output
        }
        let graph = Graph(
            name: "large_mlp",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(n)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: [.fixed(1), .fixed(n)])],
            nodes: nodes, initializers: initializers, opsetImports: ["": 18])
        let golden = GoldenExample(
            inputs: ["x": input], outputs: ["y": Tensor(shape: [1, n], scalars: x)], tolerance: (1e-4, 1e-5),
            source: "reference")
        try ArtifactWriter.write(ArtifactContents(graph: graph, goldens: [golden]), to: url)
    }

    @Test(.enabled(if: LargeArtifactTests.enabled)) func largeArtifactIsMappedNotRead() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "apus-large-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appending(path: "large.apus")
        try Self.writeArtifact(to: url)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        #expect(size >= 1 << 30)

        // What a copying loader pays at least: reading every byte (page cache warm, just written).
        var chunk = [UInt8](repeating: 0, count: 64 << 20)
        let readSeconds = try Self.seconds {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            while true {
                let count = chunk.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
                if count <= 0 { break }
            }
        }
        chunk = []

        let before = Self.residentBytes()
        var model: Model?
        let loadSeconds = try Self.seconds { model = try Model(contentsOf: url) }
        let afterLoad = Self.residentBytes()
        let loaded = try #require(model)
        print(
            "large artifact: \(size) bytes; read \(Int(readSeconds * 1000)) ms, load \(Int(loadSeconds * 1000)) ms; "
                + "RSS \(before >> 20) MB before, \(afterLoad >> 20) MB after load")
        #expect(loadSeconds < readSeconds / 4, "load \(loadSeconds) s vs read \(readSeconds) s")
        #expect(afterLoad - before < 200 << 20, "RSS grew by \((afterLoad - before) >> 20) MB at load")

        let reports = try loaded.verifyGoldens()
        print("large artifact golden: \(reports); RSS after run \(Self.residentBytes() >> 20) MB")
        #expect(!reports.isEmpty && reports.allSatisfy(\.passed), "\(reports)")
        #expect(reports.allSatisfy { $0.maxAbsoluteExpected > 0.1 }, "\(reports)")
    }
}
