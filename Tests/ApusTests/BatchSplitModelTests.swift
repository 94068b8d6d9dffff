import Apus
import Foundation
import Testing

/// A real network with a symbolic batch, run sample by sample (the default) and as one whole
/// batch, against PyTorch's outputs for batches of 2, 1 and 3.
@Suite(.serialized) struct BatchSplitModelTests {
    static let fixture = "mobilenet_v2_dynbatch"

    @Test(arguments: 0..<3)
    func splitBatchesMatchPyTorchAndSamplesRunAlone(case index: Int) throws {
        guard let directory = Fixtures.modelsDirectory?.appending(path: Self.fixture),
            FileManager.default.fileExists(atPath: directory.path)
        else {
            if Fixtures.required { Issue.record("fixture \(Self.fixture) missing: run scripts/test.sh") }
            return
        }
        let url = directory.appending(path: "model.onnx")
        let split = try Model(contentsOf: url, options: .init(threadCount: 2))
        let splitOne = try Model(contentsOf: url, options: .init(threadCount: 1))
        let whole = try Model(contentsOf: url, options: .init(threadCount: 2, splitBatches: false))
        let tailBytes = GraphRunner.Options.recommendedBatchTailBytes
        let tailed = try Model(contentsOf: url, options: .init(threadCount: 2, batchTailBytes: tailBytes))
        let tailedOne = try Model(contentsOf: url, options: .init(threadCount: 1, batchTailBytes: tailBytes))
        let input = try Tensor(contentsOfNPY: directory.appending(path: "input_\(index).npy"))
        let expected = try Tensor(contentsOfNPY: directory.appending(path: "output_\(index).npy"))
        let inputName = try #require(split.inputs.first?.name)
        let outputName = try #require(split.outputs.first?.name)
        let batch = input.shape[0]
        #expect((try split.batchSplitRefusal(for: [inputName: input]) == nil) == (batch > 1))

        let reference = try expected.scalars(as: Float.self)
        let scale = reference.map(abs).max() ?? 0
        let splitOutput = try #require(try split.run([inputName: input])[outputName])
        let wholeOutput = try #require(try whole.run([inputName: input])[outputName])
        let tailedOutput = try #require(try tailed.run([inputName: input])[outputName])
        // At batch 2 and 3 the whole batch's maps fit the budget from the 28 × 28 layers on.
        #expect((try tailed.batchTailCut(for: [inputName: input]) != nil) == (batch > 1))
        #expect(try tailedOne.run([inputName: input])[outputName]?.isBitwiseEqual(to: tailedOutput) == true)
        for (label, output) in [("split", splitOutput), ("whole", wholeOutput), ("tail", tailedOutput)] {
            #expect(output.shape == expected.shape)
            let error = zip(try output.scalars(as: Float.self), reference).map { abs($0 - $1) }.max() ?? .infinity
            #expect(error <= ModelFixtureTests.relativeTolerance * scale, "\(label): max |apus - torch| = \(error)")
        }
        #expect(try splitOne.run([inputName: input])[outputName]?.isBitwiseEqual(to: splitOutput) == true)

        // Every sample of the split batch has the bits of that sample run alone.
        let pixels = try input.scalars(as: Float.self)
        let rows = try splitOutput.scalars(as: Float.self)
        let (sampleSize, classes) = (pixels.count / batch, rows.count / batch)
        for sample in 0..<batch {
            var shape = input.shape.dimensions
            shape[0] = 1
            let alone = Tensor(
                shape: Shape(shape), scalars: Array(pixels[sample * sampleSize..<(sample + 1) * sampleSize]))
            let row = try #require(try split.run([inputName: alone])[outputName]).scalars(as: Float.self)
            #expect(row == Array(rows[sample * classes..<(sample + 1) * classes]), "sample \(sample)")
        }
    }
}
