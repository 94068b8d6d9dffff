import Testing

@testable import ApusOps

@Suite struct ConvTransposeTests {
    /// Runs the GEMM + col2im kernel (2 threads) and the reference on deterministic data.
    static func compare(_ g: ConvTranspose2DGeometry, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try BLAS.load()
        let input = (0..<(g.batch * g.inputChannels * g.inputHeight * g.inputWidth)).map {
            Float(($0 * 37) % 23) / 7 - 1.5
        }
        let weight = (0..<(g.inputChannels * (g.outputChannels / g.groups) * g.kernelHeight * g.kernelWidth)).map {
            Float(($0 * 11) % 17) / 9 - 0.8
        }
        let bias = (0..<g.outputChannels).map { Float($0) / 4 - 0.3 }
        let count = g.batch * g.outputChannels * g.outputHeight * g.outputWidth
        var fast = [Float](repeating: .nan, count: count)
        var reference = [Float](repeating: .nan, count: count)
        var columns = [Float](repeating: 0, count: max(1, g.columnFloatCount))
        ConvTranspose2D.convTranspose2d(
            g, input: input, weight: weight, bias: bias, output: &fast, columns: &columns,
            context: ComputeContext(threadCount: 2))
        ConvTranspose2D.convTranspose2dReference(g, input: input, weight: weight, bias: bias, output: &reference)
        for (index, (a, b)) in zip(fast, reference).enumerated() {
            #expect(
                abs(a - b) <= 1e-4 * max(1, abs(b)), "element \(index): \(a) vs \(b)", sourceLocation: sourceLocation)
        }
    }

    @Test func matchesPyTorch() throws {
        // torch.nn.functional.conv_transpose2d(arange(8).reshape(1,2,2,2), arange(16).reshape(2,2,2,2)/4 - 1,
        //   bias=[0.5, -1], stride=2, padding=(1, 0), output_padding=(1, 0))
        let expected: [Float] = [
            6.5, 7.5, 7.5, 9.0, 4.5, 6.5, 4.5, 7.0, 8.5, 10.5, 9.5, 12.0, 9.0, 10.0, 12.0, 13.5, 11.0, 13.0, 13.0,
            15.5, 15.0, 17.0, 18.0, 20.5,
        ]
        try BLAS.load()
        // Height: 2·(2−1) + 1 + 2 − 2 = 3; width: 2·(2−1) + 2 = 4; the pad of 1 drops row 0.
        let g = ConvTranspose2DGeometry(
            batch: 1, inputChannels: 2, outputChannels: 2, inputHeight: 2, inputWidth: 2, outputHeight: 3,
            outputWidth: 4, kernelHeight: 2, kernelWidth: 2, strideHeight: 2, strideWidth: 2, padTop: 1)
        let input = (0..<8).map(Float.init)
        let weight = (0..<16).map { Float($0) / 4 - 1 }
        var fast = [Float](repeating: .nan, count: 24)
        var reference = [Float](repeating: .nan, count: 24)
        var columns = [Float](repeating: 0, count: g.columnFloatCount)
        ConvTranspose2D.convTranspose2d(
            g, input: input, weight: weight, bias: [0.5, -1], output: &fast, columns: &columns,
            context: ComputeContext(threadCount: 1))
        ConvTranspose2D.convTranspose2dReference(g, input: input, weight: weight, bias: [0.5, -1], output: &reference)
        #expect(fast == expected)
        #expect(reference == expected)
    }

    @Test func fastMatchesReferenceAcrossShapes() throws {
        for width in [0, 1, 15, 16, 17, 31] {
            try Self.compare(
                ConvTranspose2DGeometry(
                    batch: 2, inputChannels: 3, outputChannels: 2, inputHeight: 3, inputWidth: width,
                    outputHeight: 5, outputWidth: max(0, 2 * width + 1), kernelHeight: 3, kernelWidth: 3,
                    strideHeight: 1, strideWidth: 2, padTop: 1, padLeft: 1))
        }
        // Groups, dilation, asymmetric strides, a negative pad (output past the full result).
        try Self.compare(
            ConvTranspose2DGeometry(
                batch: 1, inputChannels: 4, outputChannels: 6, groups: 2, inputHeight: 5, inputWidth: 4,
                outputHeight: 12, outputWidth: 13, kernelHeight: 2, kernelWidth: 3, strideHeight: 2, strideWidth: 3,
                dilationHeight: 2, dilationWidth: 1, padTop: 0, padLeft: -1))
        // 1-D as height 1, and depthwise.
        try Self.compare(
            ConvTranspose2DGeometry(
                batch: 1, inputChannels: 5, outputChannels: 5, groups: 5, inputHeight: 1, inputWidth: 7,
                outputHeight: 1, outputWidth: 16, kernelHeight: 1, kernelWidth: 4, strideWidth: 2, padLeft: 1))
    }
}
