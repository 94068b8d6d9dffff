import Apus
import ApusOps
import Foundation
import Testing

/// Whole models exported from PyTorch with `torch.onnx.export` (seeded weights, randomized
/// BatchNorm statistics), run through `Model` and compared with PyTorch's own outputs.
@Suite(.serialized) struct ModelFixtureTests {
    /// max |apus − torch| ≤ 1e-4 × max |torch|.
    static let relativeTolerance: Float = 1e-4

    @Test func fixturesArePresent() throws {
        if Fixtures.required {
            #expect(Fixtures.modelNames.count >= 10, "model fixtures missing: run scripts/test.sh")
        }
    }

    @Test(arguments: Fixtures.modelNames)
    func matchesPyTorch(name: String) throws {
        let directory = try #require(Fixtures.modelsDirectory).appending(path: name)
        let model = try Model(contentsOf: directory.appending(path: "model.onnx"))
        let actual = try Self.output(of: model, directory: directory)
        try Self.expectMatch(actual, directory: directory, name: name)
    }

    /// The fixture as `apus convert --prepack-for host` stores it, convolution weights prepacked
    /// into the artifact for this kind of CPU and read in place from its mapping: PyTorch's output
    /// within the same tolerance, and the ONNX-loaded model's bit for bit.
    @Test(arguments: Fixtures.modelNames)
    func prepackedArtifactMatchesPyTorch(name: String) throws {
        let directory = try #require(Fixtures.modelsDirectory).appending(path: name)
        let source = try Topology.sorted(ONNXReader.read(contentsOf: directory.appending(path: "model.onnx")))
        let target: PrepackedWeights.Target = PackedGemm.hasAVX512 ? .avx512 : .avx2
        let (graph, report) = try PrepackWeights.apply(try Optimizer.optimize(source), target: target, threadCount: 2)
        let url = FileManager.default.temporaryDirectory.appending(path: "prepacked-\(name)-\(UUID().uuidString).apus")
        defer { try? FileManager.default.removeItem(at: url) }
        try ArtifactWriter.write(ArtifactContents(graph: graph), to: url)
        let model = try Model(contentsOf: url)
        let actual = try Self.output(of: model, directory: directory)
        try Self.expectMatch(actual, directory: directory, name: name)
        let plain = try Self.output(
            of: try Model(contentsOf: directory.appending(path: "model.onnx")), directory: directory)
        #expect(try actual.scalars(as: Float.self) == plain.scalars(as: Float.self), "\(name): prepacked ≠ plain")
        let packedNodes = model.graph.nodes.filter { $0.opType == "FusedConv" && $0.inputs.count == 5 }.count
        let input = try Tensor(contentsOfNPY: directory.appending(path: "input_0.npy"))
        let plan = try model.plan(for: [try #require(model.inputs.first?.name): input])
        // On a CPU without AVX-512 the stored OpenBLAS layout is read only where that kernel is.
        if PackedGemm.hasAVX512 || (PackedGemm.isAvailable && BLASPackedMatrix.isAvailable) {
            #expect(report.convolutions > 0 && packedNodes == report.convolutions, "\(name): \(report)")
            #expect(plan.prepackedConvolutionCount == packedNodes, "\(name): plans read what was packed")
        }
        print("model-prepacked \(name): \(report.convolutions) convolutions, \(report.bytes) bytes")
    }

    /// The model's first output for the fixture's input.
    static func output(of model: Model, directory: URL) throws -> Tensor {
        let input = try Tensor(contentsOfNPY: directory.appending(path: "input_0.npy"))
        let inputName = try #require(model.inputs.first?.name)
        let outputs = try model.run([inputName: input])
        let outputName = try #require(model.outputs.first?.name)
        return try #require(outputs[outputName])
    }

    /// `actual` against PyTorch's output: within the tolerance, with the same top-5 classes.
    static func expectMatch(_ actual: Tensor, directory: URL, name: String) throws {
        let expected = try Tensor(contentsOfNPY: directory.appending(path: "output_0.npy"))
        #expect(actual.shape == expected.shape)
        let a = try actual.scalars(as: Float.self)
        let t = try expected.scalars(as: Float.self)
        let scale = t.map(abs).max() ?? 0
        let maxError = zip(a, t).map { abs($0 - $1) }.max() ?? 0
        #expect(
            maxError.isFinite && maxError <= relativeTolerance * scale,
            "\(name): max |apus - torch| = \(maxError), max |torch| = \(scale)")
        let batch = expected.shape.count > 1 ? expected.shape[0] : 1
        let classes = t.count / max(batch, 1)
        for row in 0..<batch {
            let top = { (values: ArraySlice<Float>) in values.indices.sorted { values[$0] > values[$1] }.prefix(5) }
            let apusTop = Array(top(a[row * classes..<(row + 1) * classes]))
            let torchTop = Array(top(t[row * classes..<(row + 1) * classes]))
            #expect(apusTop == torchTop, "\(name) row \(row): top-5 \(apusTop) vs PyTorch \(torchTop)")
        }
        print(
            "model-accuracy \(name): max_abs_error=\(maxError) max_abs_torch=\(scale) relative=\(maxError / max(scale, .leastNormalMagnitude))"
        )
    }
}
