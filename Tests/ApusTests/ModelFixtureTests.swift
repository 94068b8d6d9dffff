import Apus
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
        let input = try Tensor(contentsOfNPY: directory.appending(path: "input_0.npy"))
        let expected = try Tensor(contentsOfNPY: directory.appending(path: "output_0.npy"))
        let inputName = try #require(model.inputs.first?.name)
        let outputs = try model.run([inputName: input])
        let outputName = try #require(model.outputs.first?.name)
        let actual = try #require(outputs[outputName])
        #expect(actual.shape == expected.shape)
        let a = try actual.scalars(as: Float.self)
        let t = try expected.scalars(as: Float.self)
        let scale = t.map(abs).max() ?? 0
        let maxError = zip(a, t).map { abs($0 - $1) }.max() ?? 0
        #expect(maxError.isFinite && maxError <= Self.relativeTolerance * scale,
            "\(name): max |apus - torch| = \(maxError), max |torch| = \(scale)")
        let batch = expected.shape.count > 1 ? expected.shape[0] : 1
        let classes = t.count / max(batch, 1)
        for row in 0..<batch {
            let top = { (values: ArraySlice<Float>) in values.indices.sorted { values[$0] > values[$1] }.prefix(5) }
            let apusTop = Array(top(a[row * classes..<(row + 1) * classes]))
            let torchTop = Array(top(t[row * classes..<(row + 1) * classes]))
            #expect(apusTop == torchTop, "\(name) row \(row): top-5 \(apusTop) vs PyTorch \(torchTop)")
        }
        print("model-accuracy \(name): max_abs_error=\(maxError) max_abs_torch=\(scale) relative=\(maxError / max(scale, .leastNormalMagnitude))")
    }
}
