import Testing

@testable import ApusOps

/// ``DirectConvMaxPool``: a stem on the direct kernel and the max pooling of its output as one
/// step, pooled from each worker's scratch. It must give the separate steps' bits.
@Suite(.enabled(if: PackedGemm.hasAVX512)) struct DirectConvMaxPoolTests {
    init() throws { try BLAS.load() }

    /// (stem convolution, its activation, pooling kernel, stride, pad, ceil mode)
    struct Case: CustomStringConvertible, Sendable {
        var conv: Conv2DGeometry
        var activation: FusedActivation
        var kernel: Int
        var stride: Int
        var pad: Int
        var description: String { "\(conv) \(activation) pool \(kernel)/\(stride)/\(pad)" }

        var pool: Pool2DGeometry {
            let out = { (size: Int) in (size + 2 * pad - kernel) / stride + 1 }
            return Pool2DGeometry(
                batch: conv.batch, channels: conv.outputChannels, inputHeight: conv.outputHeight,
                inputWidth: conv.outputWidth, outputHeight: out(conv.outputHeight), outputWidth: out(conv.outputWidth),
                kernelHeight: kernel, kernelWidth: kernel, strideHeight: stride, strideWidth: stride, padTop: pad,
                padLeft: pad, padBottom: pad, padRight: pad)
        }
    }

    /// ResNet's stem and pooling, and smaller odd ones: channels off the eight per pass, batch 2,
    /// stride 1 pooling, the activations the kernel applies and one applied after it.
    static let cases: [Case] = [
        Case(
            conv: geometry(c: 3, h: 224, w: 224, m: 64, k: (7, 7), stride: (2, 2), pads: (3, 3, 3, 3)),
            activation: .relu, kernel: 3, stride: 2, pad: 1),
        Case(
            conv: geometry(n: 2, c: 3, h: 37, w: 41, m: 20, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
            activation: .none, kernel: 3, stride: 2, pad: 1),
        Case(
            conv: geometry(c: 1, h: 30, w: 29, m: 12, k: (5, 5), pads: (2, 2, 2, 2)),
            activation: .clip(min: 0, max: 6), kernel: 2, stride: 2, pad: 0),
        Case(
            conv: geometry(c: 4, h: 25, w: 25, m: 16, k: (7, 7), stride: (2, 2), pads: (3, 3, 3, 3)),
            activation: .silu, kernel: 3, stride: 1, pad: 1),
    ]

    /// The joined step and the two separate steps on seeded data.
    static func run(_ c: Case, threads: Int) -> (joined: [Float], separate: [Float]) {
        let g = c.conv
        var random = TestRandom(seed: 5)
        let input = random.array(g.batch * g.inputChannels * g.inputHeight * g.inputWidth)
        let weights = random.array(g.outputChannels * g.inputChannels * g.kernelHeight * g.kernelWidth)
        let bias = random.array(g.outputChannels)
        let plan = weights.withUnsafeBufferPointer { Conv2DPlan(geometry: g, weights: $0.baseAddress) }
        #expect(plan.algorithm == .direct, "\(c)")
        guard let joinedStep = DirectConvMaxPool(conv: plan, pool: c.pool) else {
            Issue.record("not joined: \(c)")
            return ([], [])
        }
        let p = c.pool
        var map = [Float](repeating: .nan, count: g.batch * g.outputChannels * g.outputHeight * g.outputWidth)
        var separate = [Float](repeating: .nan, count: p.batch * p.channels * p.outputHeight * p.outputWidth)
        var joined = separate
        input.withUnsafeBufferPointer { x in
            weights.withUnsafeBufferPointer { w in
                bias.withUnsafeBufferPointer { b in
                    let context = ComputeContext(threadCount: threads)
                    map.withUnsafeMutableBufferPointer { m in
                        plan.run(
                            input: x.baseAddress!, weights: w.baseAddress!, bias: b.baseAddress, residual: nil,
                            output: m.baseAddress!, activation: c.activation, context: context)
                        separate.withUnsafeMutableBufferPointer {
                            Pool2D.run(
                                .max, geometry: p, input: m.baseAddress!, output: $0.baseAddress!, context: context)
                        }
                    }
                    let bytes = joinedStep.workspaceByteCount(threadCount: threads)
                    withWorkspace(bytes) { workspace in
                        joined.withUnsafeMutableBufferPointer {
                            joinedStep.run(
                                input: x.baseAddress!, weights: w.baseAddress!, bias: b.baseAddress,
                                activation: c.activation, output: $0.baseAddress!,
                                context: ComputeContext(
                                    threadCount: threads, workspace: workspace, workspaceByteCount: bytes))
                        }
                    }
                }
            }
        }
        return (joined, separate)
    }

    @Test(arguments: cases)
    func joinedStepGivesTheSeparateStepsBits(_ c: Case) {
        for threads in [1, 2] {
            let (joined, separate) = Self.run(c, threads: threads)
            #expect(!joined.isEmpty && joined.allSatisfy(\.isFinite), "\(c)")
            #expect(joined == separate, "\(c) at \(threads) threads")
        }
    }

    /// Pooling that does not read exactly the convolution's output, and non-direct plans, are not
    /// joined.
    @Test func refusesWhatItCannotJoin() {
        let c = Self.cases[1]
        let weights = [Float](repeating: 0.1, count: 20 * 3 * 9)
        let plan = weights.withUnsafeBufferPointer { Conv2DPlan(geometry: c.conv, weights: $0.baseAddress) }
        var wrongChannels = c.pool
        wrongChannels.channels = 16
        #expect(DirectConvMaxPool(conv: plan, pool: wrongChannels) == nil)
        var wrongSize = c.pool
        wrongSize.inputWidth += 1
        #expect(DirectConvMaxPool(conv: plan, pool: wrongSize) == nil)
        let pointwise = geometry(c: 3, h: 8, w: 8, m: 8, k: (1, 1))
        let other = [Float](repeating: 0.1, count: 24).withUnsafeBufferPointer {
            Conv2DPlan(geometry: pointwise, algorithm: .pointwise, weights: $0.baseAddress)
        }
        var pool = c.pool
        (pool.batch, pool.channels, pool.inputHeight, pool.inputWidth) = (1, 8, 8, 8)
        #expect(DirectConvMaxPool(conv: other, pool: pool) == nil)
    }
}
