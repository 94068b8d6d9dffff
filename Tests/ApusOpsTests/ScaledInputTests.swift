import Testing

@testable import ApusOps

/// ``Conv2DPlan/runScaledInput(input:scale:scaleStride:bias:residual:output:activation:context:)``:
/// a 1 × 1 convolution of a channel-scaled input (a squeeze-and-excitation block's end) computed
/// by scaling the packed weights' columns, against the reference convolution of the scaled input.
/// (AVX-512 only: without it the packed kernel takes reductions up to 32, shorter than these.)
@Suite(.enabled(if: PackedGemm.hasAVX512)) struct ScaledInputTests {
    init() throws { try BLAS.load() }

    /// Runs the scaled path and the reference on seeded data; `sharedScale` gives every image the
    /// same scales (`scaleStride` 0).
    static func run(_ c: ConvCase, sharedScale: Bool = false, threads: Int = 1, split: Bool = false) -> (
        fast: [Float], reference: [Float]
    ) {
        let g = c.geometry
        var random = TestRandom(seed: 11)
        let input = random.array(g.batch * g.inputChannels * g.inputHeight * g.inputWidth)
        let weights = random.array(g.outputChannels * g.inputChannels)
        let bias = random.array(g.outputChannels)
        let scales = random.array((sharedScale ? 1 : g.batch) * g.inputChannels).map { 0.5 + $0 }
        let outCount = g.batch * g.outputChannels * g.outputHeight * g.outputWidth
        let residual = random.array(outCount)
        // The reference convolves the input scaled channel by channel.
        let plane = g.inputHeight * g.inputWidth
        var scaledInput = input
        for image in 0..<g.batch {
            for channel in 0..<g.inputChannels {
                let s = scales[(sharedScale ? 0 : image) * g.inputChannels + channel]
                for i in 0..<plane { scaledInput[(image * g.inputChannels + channel) * plane + i] *= s }
            }
        }
        var reference = [Float](repeating: 0, count: outCount)
        var fast = [Float](repeating: .nan, count: outCount)
        let plan = weights.withUnsafeBufferPointer {
            Conv2DPlan(geometry: g, weights: $0.baseAddress, splitsReduction: split)
        }
        #expect(plan.scalesInputThroughWeights, "\(g)")
        #expect(plan.splitsReduction == split, "\(g)")
        bias.withUnsafeBufferPointer { b in
            residual.withUnsafeBufferPointer { r in
                let bp = c.bias ? b.baseAddress : nil
                let rp = c.residual ? r.baseAddress : nil
                scaledInput.withUnsafeBufferPointer { x in
                    weights.withUnsafeBufferPointer { w in
                        reference.withUnsafeMutableBufferPointer { out in
                            Conv2DReference.run(
                                geometry: g, input: x.baseAddress!, weights: w.baseAddress!, bias: bp, residual: rp,
                                output: out.baseAddress!, activation: c.activation)
                        }
                    }
                }
                let bytes = plan.scaledInputWorkspaceByteCount(threadCount: threads)
                withWorkspace(bytes) { workspace in
                    let context = ComputeContext(threadCount: threads, workspace: workspace, workspaceByteCount: bytes)
                    input.withUnsafeBufferPointer { x in
                        scales.withUnsafeBufferPointer { s in
                            fast.withUnsafeMutableBufferPointer { out in
                                plan.runScaledInput(
                                    input: x.baseAddress!, scale: s.baseAddress!,
                                    scaleStride: sharedScale ? 0 : g.inputChannels, bias: bp, residual: rp,
                                    output: out.baseAddress!, activation: c.activation, context: context)
                            }
                        }
                    }
                }
            }
        }
        return (fast, reference)
    }

    /// Channel counts off the panels (8) and the reduction block (128), maps split by rows and by
    /// columns, batch 2 with per-image and shared scales, residual and activations.
    static let cases: [ConvCase] = [
        ConvCase(geometry: geometry(c: 32, h: 14, w: 14, m: 24, k: (1, 1)), activation: .silu),
        ConvCase(geometry: geometry(c: 144, h: 28, w: 28, m: 40, k: (1, 1)), residual: true),
        ConvCase(geometry: geometry(n: 2, c: 96, h: 56, w: 56, m: 21, k: (1, 1)), residual: true, activation: .relu),
        // Above 196 positions: a batch of smaller maps takes the batched product instead
        // (Conv2DPlan.batchesColumns), which the planner's join checks for.
        ConvCase(geometry: geometry(n: 2, c: 240, h: 17, w: 13, m: 80, k: (1, 1)), bias: false),
    ]

    @Test(arguments: cases)
    func matchesTheReferenceOfTheScaledInput(_ c: ConvCase) {
        for shared in [false, true] {
            let (fast, reference) = Self.run(c, sharedScale: shared)
            expectClose(fast, reference, reduction: c.geometry.inputChannels, "\(c) shared \(shared)")
        }
    }

    /// The scaled copy is split between threads by panels and the tiles as in the plain path: no
    /// bit depends on the thread count.
    @Test func bitwiseIdenticalForOneAndTwoThreads() {
        for c in Self.cases {
            #expect(Self.run(c, threads: 1).fast == Self.run(c, threads: 2).fast, "\(c)")
        }
    }

    /// Layers that split their reduction (at most 196 positions, K ≥ 2M, K ≥ 128): on 14² maps
    /// the weights are the smaller and each half scales its columns of them; on 7² maps the
    /// input is, and each half scales its own input channels. Channel counts off the panels and
    /// the 16-channel split point. (Batches of such maps take the batched product, which does not
    /// split.)
    static let splitCases: [ConvCase] = [
        ConvCase(geometry: geometry(c: 480, h: 14, w: 14, m: 80, k: (1, 1)), residual: true),
        ConvCase(geometry: geometry(c: 200, h: 14, w: 14, m: 37, k: (1, 1)), activation: .relu),
        ConvCase(geometry: geometry(c: 672, h: 7, w: 7, m: 192, k: (1, 1))),
        ConvCase(geometry: geometry(c: 300, h: 7, w: 7, m: 100, k: (1, 1)), residual: true),
    ]

    /// The split paths against the reference of the scaled input, with the same bits at 1, 2 and
    /// 3 threads (the halves and their parts depend on the geometry, the parts on nothing the
    /// bits see), per-image and shared scales.
    @Test(arguments: splitCases)
    func splitReductionMatchesTheReference(_ c: ConvCase) {
        let g = c.geometry
        let weightsScaled = g.outputChannels * g.inputChannels <= g.inputChannels * g.inputHeight * g.inputWidth
        #expect(weightsScaled == (g.inputHeight == 14), "\(g): the case should take the other mode")
        for shared in [false, true] {
            let (fast, reference) = Self.run(c, sharedScale: shared, split: true)
            expectClose(fast, reference, reduction: g.inputChannels, "\(c) shared \(shared)")
            for threads in [2, 3] {
                #expect(
                    Self.run(c, sharedScale: shared, threads: threads, split: true).fast == fast,
                    "\(c) shared \(shared) at \(threads) threads")
            }
        }
    }

    /// The scale of the copy is the input's: scales of 1 give the plain path's output.
    @Test func unitScalesGiveThePlainConvolution() {
        let c = Self.cases[1]
        let g = c.geometry
        var random = TestRandom(seed: 3)
        let input = random.array(g.inputChannels * g.inputHeight * g.inputWidth)
        let weights = random.array(g.outputChannels * g.inputChannels)
        let ones = [Float](repeating: 1, count: g.inputChannels)
        let plan = weights.withUnsafeBufferPointer { Conv2DPlan(geometry: g, weights: $0.baseAddress) }
        var plain = [Float](repeating: 0, count: g.outputChannels * g.outputHeight * g.outputWidth)
        var scaled = plain
        let bytes = plan.scaledInputWorkspaceByteCount(threadCount: 1)
        withWorkspace(bytes) { workspace in
            let context = ComputeContext(threadCount: 1, workspace: workspace, workspaceByteCount: bytes)
            input.withUnsafeBufferPointer { x in
                weights.withUnsafeBufferPointer { w in
                    plain.withUnsafeMutableBufferPointer {
                        plan.run(
                            input: x.baseAddress!, weights: w.baseAddress!, bias: nil, residual: nil,
                            output: $0.baseAddress!, activation: .none, context: context)
                    }
                }
                ones.withUnsafeBufferPointer { s in
                    scaled.withUnsafeMutableBufferPointer {
                        plan.runScaledInput(
                            input: x.baseAddress!, scale: s.baseAddress!, scaleStride: 0, bias: nil, residual: nil,
                            output: $0.baseAddress!, activation: .none, context: context)
                    }
                }
            }
        }
        #expect(plain == scaled)
    }
}
