import Testing

@testable import ApusOps

/// The depthwise kernel's vector rows, including the partial last vector of narrow rows, against
/// the direct reference convolution.
@Suite struct DepthwiseTests {
    @Test(arguments: [1, 7, 14, 15, 16, 17, 37])
    func widthsAroundTheVectorMatchReference(_ width: Int) {
        for (kernel, stride) in [(3, 1), (3, 2), (5, 1), (5, 2), (2, 1)] {
            let pad = kernel / 2
            for (residual, activation) in [(false, FusedActivation.none), (true, .relu), (false, .silu)] {
                let c = ConvCase(
                    geometry: geometry(
                        n: 2, c: 3, h: 6, w: width, m: 3, groups: 3, k: (kernel, kernel), stride: (stride, stride),
                        pads: (pad, pad, pad, pad)),
                    residual: residual, activation: activation)
                let (fast, reference, plan) = runConv(c)
                #expect(plan.algorithm == .depthwise)
                expectClose(fast, reference, reduction: kernel * kernel, "\(c)")
                let two = runConv(c, threads: 2)
                #expect(fast.map(\.bitPattern) == two.fast.map(\.bitPattern), "\(c)")
            }
        }
    }
}

/// The specialized two-row kernels (3×3 and 5×5, stride 1 and 2) and the general one (7×7,
/// dilation, unequal strides) on awkward widths, asymmetric and odd padding, several channels per
/// worker (the plane's zero padding is written once per worker) and an odd number of output rows.
@Suite struct DepthwiseShapeTests {
    @Test(arguments: [1, 7, 14, 15, 16, 17, 31, 112])
    func shapesMatchReference(_ width: Int) {
        let shapes: [(k: Int, stride: (Int, Int), dilation: (Int, Int), pads: (Int, Int, Int, Int))] = [
            (3, (1, 1), (1, 1), (1, 1, 1, 1)), (3, (2, 2), (1, 1), (1, 1, 1, 1)), (3, (2, 2), (1, 1), (0, 0, 1, 1)),
            (3, (2, 2), (1, 1), (1, 2, 0, 1)), (5, (1, 1), (1, 1), (2, 2, 2, 2)), (5, (2, 2), (1, 1), (1, 2, 2, 1)),
            (5, (2, 2), (1, 1), (2, 3, 0, 0)), (7, (1, 1), (1, 1), (3, 3, 3, 3)), (7, (2, 2), (1, 1), (3, 3, 3, 3)),
            (3, (1, 1), (2, 2), (2, 2, 2, 2)), (3, (1, 2), (1, 1), (1, 1, 1, 1)), (3, (3, 3), (1, 1), (1, 1, 1, 1)),
        ]
        for shape in shapes {
            for height in [1, 5, 8] {
                let g = geometry(
                    n: 1, c: 5, h: height, w: width, m: 5, groups: 5, k: (shape.k, shape.k), stride: shape.stride,
                    dilation: shape.dilation, pads: shape.pads)
                if g.outputHeight < 1 || g.outputWidth < 1 { continue }
                for (residual, activation) in [
                    (false, FusedActivation.clip(min: 0, max: 6)), (true, .none), (false, .silu),
                    (false, .leakyRelu(alpha: 0.1)),
                ] {
                    let c = ConvCase(geometry: g, residual: residual, activation: activation)
                    let (fast, reference, plan) = runConv(c)
                    #expect(plan.algorithm == .depthwise)
                    expectClose(fast, reference, reduction: shape.k * shape.k, "\(c)")
                    let two = runConv(c, threads: 2)
                    #expect(fast.map(\.bitPattern) == two.fast.map(\.bitPattern), "\(c)")
                }
            }
        }
    }
}

/// The two kernels behind the depthwise path: the AVX-512 one (chosen on this machine when the
/// CPU has it) on model-like shapes, and the Swift one, which CPUs without AVX-512 run, called
/// directly so that it stays tested here.
@Suite struct DepthwiseKernelTests {
    /// Many planes per task (7 × 7 and 14 × 14 maps are split into blocks of planes), every
    /// activation (those the C kernel lacks run after it), residual, 1 and 2 threads.
    @Test(arguments: [7, 14, 28, 56])
    func modelShapesMatchReference(_ size: Int) {
        for (kernel, stride) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
            let pad = kernel / 2
            let g = geometry(
                n: 2, c: 90, h: size, w: size, m: 90, groups: 90, k: (kernel, kernel), stride: (stride, stride),
                pads: (pad, pad, pad, pad))
            for (residual, activation) in [
                (false, FusedActivation.clip(min: 0, max: 6)), (true, .none), (false, .silu), (false, .sigmoid),
                (false, .hardSwish), (true, .leakyRelu(alpha: 0.1)), (false, .relu),
            ] {
                let c = ConvCase(geometry: g, residual: residual, activation: activation)
                let (fast, reference, plan) = runConv(c)
                #expect(plan.algorithm == .depthwise)
                #expect((plan.vectorKernel != nil) == PackedGemm.hasAVX512, "\(c)")
                expectClose(fast, reference, reduction: kernel * kernel, "\(c)")
                let two = runConv(c, threads: 2)
                #expect(fast.map(\.bitPattern) == two.fast.map(\.bitPattern), "\(c)")
            }
        }
    }

    /// The channel kernel (sixteen planes of a small map at a time, through a transposed padded
    /// map) gives the bits of the per-plane kernels: every plane of a call computed together
    /// against each plane computed alone (a call of one plane never takes the channel kernel).
    /// Odd sizes, asymmetric padding, a 7 × 7 kernel (the generic loop), 40 channels (two groups
    /// and eight planes left over), residual and every activation the kernel applies.
    @Test(
        .enabled(if: PackedGemm.hasAVX512),
        arguments: [
            (7, 7, 3, 1), (7, 7, 5, 1), (14, 14, 3, 2), (14, 14, 5, 2), (14, 14, 5, 1), (9, 13, 3, 1), (13, 11, 7, 2),
            (5, 6, 7, 1), (3, 3, 1, 1),
        ])
    func channelKernelIsBitwiseThePlaneKernels(_ shape: (Int, Int, Int, Int)) {
        let (h, w, k, s) = shape
        let channels = 40
        for pads in [(k / 2, k / 2, k / 2, k / 2), (0, k - 1, k / 2, 0)] {
            let g = geometry(
                n: 2, c: channels, h: h, w: w, m: channels, groups: channels, k: (k, k), stride: (s, s), pads: pads)
            guard let kernel = DirectConvKernel(g) else {
                Issue.record("no AVX-512 kernel for \(g)")
                continue
            }
            var random = TestRandom(seed: 11)
            let input = random.array(2 * channels * h * w)
            let weights = random.array(channels * k * k)
            let bias = random.array(channels)
            let planes = 2 * channels
            let residual = random.array(planes * g.outputHeight * g.outputWidth)
            for (withResidual, activation) in [
                (false, FusedActivation.none), (true, .relu), (false, .clip(min: -0.5, max: 0.5)), (true, .silu),
                (false, .sigmoid),
            ] {
                var together = [Float](repeating: .nan, count: residual.count)
                var alone = together
                input.withUnsafeBufferPointer { x in
                    weights.withUnsafeBufferPointer { wt in
                        bias.withUnsafeBufferPointer { b in
                            residual.withUnsafeBufferPointer { r in
                                let rp = withResidual ? r.baseAddress : nil
                                together.withUnsafeMutableBufferPointer { out in
                                    kernel.runDepthwise(
                                        channels: channels, tasks: 0..<planes, input: x.baseAddress!,
                                        weights: wt.baseAddress!, bias: b.baseAddress, residual: rp,
                                        output: out.baseAddress!, activation: activation)
                                }
                                alone.withUnsafeMutableBufferPointer { out in
                                    for plane in 0..<planes {
                                        kernel.runDepthwise(
                                            channels: channels, tasks: plane..<plane + 1, input: x.baseAddress!,
                                            weights: wt.baseAddress!, bias: b.baseAddress, residual: rp,
                                            output: out.baseAddress!, activation: activation)
                                    }
                                }
                            }
                        }
                    }
                }
                let differing = zip(together, alone).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(g) \(activation) residual \(withResidual): \(differing) outputs differ")
                #expect(!together.contains { $0.isNaN }, "\(g): outputs left unwritten")
            }
        }
    }

    /// The AVX2 channel kernel (eight planes of a small map at a time) gives the bits of the AVX2
    /// row kernel, plane by plane: every plane of a range through ``DepthwiseConv2D/AVX2Channels``
    /// (which sends planes outside whole groups to the row kernel) against every plane through the
    /// row kernel alone. Odd sizes, asymmetric padding, 44 channels (five groups and four planes
    /// left over per image), ranges starting inside a group and crossing images, NaN, infinities
    /// and zeros of both signs among the inputs, residual and every activation the kernel applies.
    @Test(
        .enabled(if: DepthwiseConv2D.usesAVX2Rows),
        arguments: [
            (7, 7, 3, 1), (7, 7, 5, 1), (14, 14, 3, 2), (14, 14, 5, 2), (14, 14, 5, 1), (14, 14, 3, 1), (9, 13, 3, 1),
            (13, 11, 5, 2), (5, 6, 3, 1), (28, 28, 5, 2), (27, 27, 3, 2), (1, 1, 3, 1), (28, 28, 3, 1),
            (28, 28, 5, 1), (27, 25, 3, 1),
        ])
    func avx2ChannelKernelIsBitwiseTheRowKernel(_ shape: (Int, Int, Int, Int)) {
        let (h, w, k, s) = shape
        let channels = 44
        let images = 2
        let planes = images * channels
        for pads in [(k / 2, k / 2, k / 2, k / 2), (0, k - 1, k / 2, 0)] {
            let g = geometry(
                n: images, c: channels, h: h, w: w, m: channels, groups: channels, k: (k, k), stride: (s, s),
                pads: pads)
            guard g.outputHeight >= 1, g.outputWidth >= 1 else { continue }
            let outPlane = g.outputHeight * g.outputWidth
            var random = TestRandom(seed: 13)
            var input = random.array(planes * h * w)
            for i in stride(from: 3, to: input.count, by: 37) { input[i] = [.nan, .infinity, -0.0, 0][i % 4] }
            let weights = random.array(channels * k * k)
            let bias = random.array(channels).enumerated().map { $0.offset % 5 == 0 ? -0.0 : $0.element }
            let residual = random.array(planes * outPlane)
            let layout = DepthwiseLayout(geometry: g)
            for (withResidual, activation) in [
                (false, FusedActivation.none), (true, .relu), (false, .clip(min: -0.5, max: 0.5)), (true, .silu),
                (false, .sigmoid),
            ] {
                guard let channelKernel = DepthwiseConv2D.AVX2Channels(geometry: g, activation: activation) else {
                    Issue.record("no AVX2 channel kernel for \(g)")
                    continue
                }
                var grouped = [Float](repeating: .nan, count: residual.count)
                var alone = grouped
                var scratch = [Float](repeating: 0, count: layout.planeElementCount)
                var grouping = 0
                input.withUnsafeBufferPointer { x in
                    weights.withUnsafeBufferPointer { wt in
                        bias.withUnsafeBufferPointer { b in
                            residual.withUnsafeBufferPointer { r in
                                scratch.withUnsafeMutableBufferPointer { sc in
                                    let rp = withResidual ? r.baseAddress : nil
                                    DepthwiseConv2D.clearPlane(layout: layout, scratch: sc.baseAddress!)
                                    func rowKernel(_ plane: Int, _ out: UnsafeMutablePointer<Float>) {
                                        let channel = plane % channels
                                        DepthwiseConv2D.runChannel(
                                            layout: layout, input: x.baseAddress! + plane * h * w,
                                            weights: wt.baseAddress! + channel * k * k, bias: b[channel],
                                            residual: rp.map { $0 + plane * outPlane }, output: out + plane * outPlane,
                                            activation: activation, scratch: sc.baseAddress!, avx2: true)
                                    }
                                    grouped.withUnsafeMutableBufferPointer { out in
                                        // Three ranges: one ending inside a group, one starting there
                                        // and crossing into the second image, the rest.
                                        for range in [0..<13, 13..<61, 61..<planes] {
                                            channelKernel.run(
                                                planes: range, channels: channels, input: x.baseAddress!,
                                                weights: wt.baseAddress!, bias: b.baseAddress, residual: rp,
                                                output: out.baseAddress!
                                            ) { plane in
                                                grouping += 1
                                                rowKernel(plane, out.baseAddress!)
                                            }
                                        }
                                    }
                                    alone.withUnsafeMutableBufferPointer { out in
                                        for plane in 0..<planes { rowKernel(plane, out.baseAddress!) }
                                    }
                                }
                            }
                        }
                    }
                }
                // Alone (planes): 8..<13 and 13..<16 (the cut at 13), 40..<44 (image 1's last four
                // channels), 60 (the cut at 61 inside image 2's channels 16..<24), 61..<68 (up to
                // image 2's channel 24), 84..<88.
                #expect(grouping == 5 + 3 + 4 + 1 + 7 + 4, "\(g): \(grouping) planes outside whole groups")
                let differing = zip(grouped, alone).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(g) \(activation) residual \(withResidual): \(differing) outputs differ")
                #expect(grouped.contains { !$0.isNaN }, "\(g): outputs left unwritten")
            }
        }
    }

    /// The specialised kernels (stride-1 and stride-2 rows, stride-2 row pairs on maps at most 8
    /// wide, 5 × 5 bands, channel groups) give the bits of the table-driven kernel on every
    /// geometry they take: widths around one and two vectors and the model widths, heights around
    /// the row kernels' groups of rows, asymmetric padding, residual and every activation the
    /// kernels apply. Inputs have NaN and infinities in a few places and zeros of both signs, so
    /// that a padded tap left out (instead of added as a zero product) or a reordered sum shows.
    @Test(
        .enabled(if: PackedGemm.hasAVX512),
        arguments: [(3, 1), (3, 2), (5, 1), (5, 2)])
    func specialisedKernelsAreBitwiseTheTableKernel(_ shape: (Int, Int)) {
        let (k, s) = shape
        let channels = 18
        for (h, w) in [
            (1, 1), (5, 7), (14, 14), (7, 15), (9, 16), (4, 17), (13, 28), (6, 31), (3, 33), (11, 56), (2, 112),
        ] {
            for pads in [(k / 2, k / 2, k / 2, k / 2), (0, k / 2, k - 1, k / 2), (k - 1, 0, 0, k - 1)] {
                let g = geometry(
                    n: 1, c: channels, h: h, w: w, m: channels, groups: channels, k: (k, k), stride: (s, s),
                    pads: pads)
                guard g.outputHeight >= 1, g.outputWidth >= 1 else { continue }
                guard let kernel = DirectConvKernel(g) else {
                    Issue.record("no AVX-512 kernel for \(g)")
                    continue
                }
                var random = TestRandom(seed: 5)
                var input = random.array(channels * h * w)
                for i in stride(from: 3, to: input.count, by: 41) { input[i] = [.nan, .infinity, -0.0, 0][i % 4] }
                let weights = random.array(channels * k * k)
                let bias = random.array(channels).enumerated().map { $0.offset % 5 == 0 ? -0.0 : $0.element }
                let residual = random.array(channels * g.outputHeight * g.outputWidth)
                for (withResidual, activation) in [
                    (false, FusedActivation.none), (true, .relu), (false, .clip(min: -0.5, max: 0.5)),
                    (true, .silu), (false, .sigmoid),
                ] {
                    func compute(tableOnly: Bool) -> [Float] {
                        var out = [Float](repeating: 7, count: residual.count)
                        input.withUnsafeBufferPointer { x in
                            weights.withUnsafeBufferPointer { wt in
                                bias.withUnsafeBufferPointer { b in
                                    residual.withUnsafeBufferPointer { r in
                                        out.withUnsafeMutableBufferPointer { o in
                                            kernel.runDepthwise(
                                                channels: channels, tasks: 0..<channels, input: x.baseAddress!,
                                                weights: wt.baseAddress!, bias: b.baseAddress,
                                                residual: withResidual ? r.baseAddress : nil, output: o.baseAddress!,
                                                activation: activation, tableOnly: tableOnly)
                                        }
                                    }
                                }
                            }
                        }
                        return out
                    }
                    let fast = compute(tableOnly: false)
                    let table = compute(tableOnly: true)
                    let differing = zip(fast, table).filter { $0.bitPattern != $1.bitPattern }.count
                    #expect(differing == 0, "\(g) \(activation) residual \(withResidual): \(differing) outputs differ")
                }
            }
        }
    }

    /// Planes tall enough that the banded 5 × 5 stride-1 kernel (maps 9 to 32 wide) needs several
    /// bands of its on-stack scratch, with padding rows at both ends and asymmetric padding.
    @Test(arguments: [9, 20, 32])
    func tallNarrowPlanesSpanSeveralBands(_ width: Int) {
        for pads in [(2, 2, 2, 2), (1, 2, 3, 0), (0, 1, 0, 3)] {
            let g = geometry(n: 1, c: 3, h: 700, w: width, m: 3, groups: 3, k: (5, 5), pads: pads)
            for (residual, activation) in [(true, FusedActivation.relu), (false, .silu)] {
                let c = ConvCase(geometry: g, residual: residual, activation: activation)
                let (fast, reference, plan) = runConv(c)
                #expect(plan.algorithm == .depthwise)
                expectClose(fast, reference, reduction: 25, "\(c)")
                let two = runConv(c, threads: 2)
                #expect(fast.map(\.bitPattern) == two.fast.map(\.bitPattern), "\(c)")
            }
        }
    }

    /// Which geometries the AVX-512 kernel takes: square kernels up to 7 × 7 with equal strides of
    /// 1 or 2 and no dilation.
    @Test func vectorKernelChoice() {
        guard PackedGemm.hasAVX512 else { return }
        func kernel(_ k: Int, stride: (Int, Int) = (1, 1), dilation: (Int, Int) = (1, 1)) -> Bool {
            let g = geometry(
                c: 4, h: 20, w: 20, m: 4, groups: 4, k: (k, k), stride: stride, dilation: dilation, pads: (1, 1, 1, 1))
            return DirectConvKernel(g) != nil
        }
        #expect(kernel(3) && kernel(5) && kernel(7) && kernel(1) && kernel(3, stride: (2, 2)))
        #expect(!kernel(9) && !kernel(3, stride: (1, 2)) && !kernel(3, stride: (3, 3)) && !kernel(3, dilation: (2, 2)))
        // A stem whose sizes pass the table's 32-bit offsets is planned through im2col, not
        // refused (made only, never run: its output would be enormous).
        let huge = geometry(c: 3, h: 1, w: 1, m: 8, k: (3, 3), pads: (1 << 28, 1, 1 << 28, 1))
        #expect(DirectConvKernel.suitsFewChannels(huge) && DirectConvKernel(huge) == nil)
        #expect(Conv2DPlan(geometry: huge).algorithm == .im2col)
        // A plane whose table would pass the bound: no kernel (the Swift depthwise kernel runs).
        let wide = geometry(c: 2, h: 4096, w: 4096, m: 2, groups: 2, k: (7, 7), pads: (3, 3, 3, 3))
        #expect(DirectConvKernel(wide) == nil)
        #expect(DirectConvKernel(geometry(c: 2, h: 512, w: 512, m: 2, groups: 2, k: (7, 7), pads: (3, 3, 3, 3))) != nil)
    }

    /// The AVX2 stem kernel called directly, every task of a run in turn, against the reference:
    /// CPUs with AVX-512, whose plans take the AVX-512 kernel, test it here too. A stem, passes of
    /// one, two and a partial vector, chunked rows, stride 4, one-sided padding.
    @Test(.enabled(if: PackedGemm.cpuHasAVX2))
    func avx2StemKernelMatchesReference() {
        let shapes: [(c: Int, m: Int, h: Int, w: Int, k: Int, stride: Int, pads: (Int, Int, Int, Int))] = [
            (3, 64, 40, 40, 7, 2, (3, 3, 3, 3)), (1, 5, 17, 17, 5, 1, (2, 2, 2, 2)), (2, 17, 6, 5, 3, 1, (0, 2, 2, 0)),
            (3, 40, 5, 600, 7, 2, (3, 3, 3, 3)), (4, 24, 11, 13, 4, 4, (0, 0, 0, 0)),
        ]
        for shape in shapes {
            let g = geometry(
                n: 2, c: shape.c, h: shape.h, w: shape.w, m: shape.m, k: (shape.k, shape.k),
                stride: (shape.stride, shape.stride), pads: shape.pads)
            var random = TestRandom(seed: 3)
            let input = random.array(g.batch * g.inputChannels * g.inputHeight * g.inputWidth)
            let weights = random.array(g.outputChannels * g.inputChannels * g.kernelHeight * g.kernelWidth)
            let bias = random.array(g.outputChannels)
            let count = g.batch * g.outputChannels * g.outputHeight * g.outputWidth
            let residual = random.array(count)
            guard let kernel = weights.withUnsafeBufferPointer({ AVX2StemKernel(g, weights: $0.baseAddress!) }) else {
                Issue.record("no AVX2 stem kernel for \(g)")
                continue
            }
            for (withBias, withResidual, activation) in [
                (true, false, FusedActivation.relu), (false, true, .silu), (true, true, .hardSwish),
            ] {
                var fast = [Float](repeating: .nan, count: count)
                var reference = fast
                input.withUnsafeBufferPointer { x in
                    weights.withUnsafeBufferPointer { w in
                        bias.withUnsafeBufferPointer { b in
                            residual.withUnsafeBufferPointer { r in
                                let bp = withBias ? b.baseAddress : nil
                                let rp = withResidual ? r.baseAddress : nil
                                reference.withUnsafeMutableBufferPointer { out in
                                    Conv2DReference.run(
                                        geometry: g, input: x.baseAddress!, weights: w.baseAddress!, bias: bp,
                                        residual: rp, output: out.baseAddress!, activation: activation)
                                }
                                fast.withUnsafeMutableBufferPointer { out in
                                    let operands = ConvOperands(
                                        input: x.baseAddress!, weights: w.baseAddress!, bias: bp, residual: rp,
                                        output: out.baseAddress!, activation: activation)
                                    for task in 0..<kernel.taskCount(batch: g.batch) {
                                        kernel.run(task: task, operands: operands)
                                    }
                                }
                            }
                        }
                    }
                }
                expectClose(
                    fast, reference, reduction: shape.c * shape.k * shape.k,
                    "\(g) bias \(withBias) residual \(withResidual) \(activation)")
            }
        }
    }

    /// Layers with at most four input channels take the direct path when the plan has the
    /// weights and a kernel for it runs here (AVX-512's, or the AVX2 one with output channels in
    /// the lanes): stems, output channel counts that fill one or two vectors of a 16-channel pass
    /// or leave a partial one, rows wider than the AVX2 kernel's chunk (600 → 300 columns), maps
    /// narrower than a vector, padding on one side only, with and without bias.
    @Test func fewInputChannelsMatchReference() {
        let shapes: [(c: Int, m: Int, h: Int, w: Int, k: Int, stride: Int, pads: (Int, Int, Int, Int))] = [
            (3, 32, 224, 224, 3, 2, (1, 1, 1, 1)), (3, 64, 64, 64, 7, 2, (3, 3, 3, 3)),
            (1, 5, 17, 17, 5, 1, (2, 2, 2, 2)),
            (4, 13, 15, 15, 5, 1, (2, 2, 2, 2)), (2, 9, 9, 9, 3, 2, (0, 0, 1, 1)), (3, 8, 7, 7, 1, 1, (0, 0, 0, 0)),
            (3, 40, 9, 600, 7, 2, (3, 3, 3, 3)), (3, 24, 11, 13, 4, 4, (0, 0, 0, 0)), (2, 17, 6, 5, 3, 1, (0, 2, 2, 0)),
        ]
        for shape in shapes {
            let g = geometry(
                n: 2, c: shape.c, h: shape.h, w: shape.w, m: shape.m, k: (shape.k, shape.k),
                stride: (shape.stride, shape.stride), pads: shape.pads)
            for (bias, residual, activation) in [
                (true, false, FusedActivation.relu), (true, true, .none), (false, false, .silu),
                (true, false, .hardSwish), (true, true, .clip(min: -0.5, max: 0.5)),
            ] {
                let c = ConvCase(geometry: g, bias: bias, residual: residual, activation: activation)
                let (fast, reference, plan) = runConv(c, planWithWeights: true)
                #expect((plan.algorithm == .direct) == (DirectConvKernel(g) != nil || AVX2StemKernel.takes(g)), "\(c)")
                if !PackedGemm.hasAVX512 && AVX2StemKernel.isEnabled { #expect(plan.stemKernel != nil, "\(c)") }
                expectClose(fast, reference, reduction: shape.c * shape.k * shape.k, "\(c)")
                let two = runConv(c, threads: 2, planWithWeights: true)
                #expect(fast.map(\.bitPattern) == two.fast.map(\.bitPattern), "\(c)")
            }
        }
    }

    /// The Swift kernel and, where the CPU has AVX2 and FMA, the AVX2 row kernel against their
    /// scalar reference (all through the padded plane), with and without a residual; heights that
    /// pair every row, leave the last one unpaired, and span several eight-row blocks.
    /// The AVX2 direct kernel (the unpadded plane, stride-2 columns split in registers) gives the
    /// bits of the AVX2 row kernel on the padded plane, and matches the reference: widths around
    /// one to four vectors and the model widths, both strides and kernel sizes, asymmetric padding,
    /// residual and the activations the kernel applies. Inputs have NaN, infinities and zeros of
    /// both signs in a few places (a second pass), so that a padded tap left out or a reordered sum
    /// shows.
    @Test(
        .enabled(if: DepthwiseConv2D.usesAVX2Rows),
        arguments: [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 56, 57, 112, 113])
    func avx2DirectKernelIsBitwiseTheRowKernel(_ width: Int) {
        var random = TestRandom(seed: UInt64(100 + width))
        for (k, s) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
            for pads in [(k / 2, k / 2, k / 2, k / 2), (0, k - 1, k / 2, 0), (1, 0, 0, 2)] {
                for height in [1, 6, 9] {
                    let g = geometry(
                        c: 1, h: height, w: width, m: 1, groups: 1, k: (k, k), stride: (s, s), pads: pads)
                    if g.outputHeight < 1 || g.outputWidth < 1 { continue }
                    let layout = DepthwiseLayout(geometry: g)
                    let clean = random.array(height * width)
                    var special = clean
                    for i in stride(from: 2, to: special.count, by: 11) {
                        special[i] = [.nan, .infinity, -0.0, 0][i % 4]
                    }
                    let weights = random.array(k * k)
                    let residual = random.array(g.outputHeight * g.outputWidth)
                    for (withResidual, activation, bias) in [
                        (false, FusedActivation.none, Float(-0.0)), (true, .relu, 0.25),
                        (false, .clip(min: -0.5, max: 0.5), 0.5), (true, .silu, -0.125), (false, .sigmoid, 0),
                    ] {
                        guard let direct = DepthwiseConv2D.AVX2Direct(geometry: g, activation: activation) else {
                            Issue.record("no AVX2 direct kernel for \(g)")
                            continue
                        }
                        for (input, checkReference) in [(clean, true), (special, false)] {
                            var fast = [Float](repeating: .nan, count: residual.count)
                            var rows = fast
                            var reference = fast
                            var scratch = [Float](repeating: 0, count: layout.planeElementCount)
                            input.withUnsafeBufferPointer { x in
                                weights.withUnsafeBufferPointer { w in
                                    residual.withUnsafeBufferPointer { r in
                                        scratch.withUnsafeMutableBufferPointer { sc in
                                            let rp = withResidual ? r.baseAddress : nil
                                            fast.withUnsafeMutableBufferPointer {
                                                direct.run(
                                                    input: x.baseAddress!, weights: w.baseAddress!, bias: bias,
                                                    residual: rp, output: $0.baseAddress!)
                                            }
                                            DepthwiseConv2D.clearPlane(layout: layout, scratch: sc.baseAddress!)
                                            rows.withUnsafeMutableBufferPointer {
                                                DepthwiseConv2D.runChannel(
                                                    layout: layout, input: x.baseAddress!, weights: w.baseAddress!,
                                                    bias: bias, residual: rp, output: $0.baseAddress!,
                                                    activation: activation, scratch: sc.baseAddress!, avx2: true)
                                            }
                                            reference.withUnsafeMutableBufferPointer {
                                                DepthwiseConv2D.runChannelReference(
                                                    layout: layout, input: x.baseAddress!, weights: w.baseAddress!,
                                                    bias: bias, residual: rp, output: $0.baseAddress!,
                                                    activation: activation, scratch: sc.baseAddress!)
                                            }
                                        }
                                    }
                                }
                            }
                            let differing = zip(fast, rows).filter { $0.bitPattern != $1.bitPattern }.count
                            #expect(
                                differing == 0,
                                "\(g) \(activation) residual \(withResidual): \(differing) outputs differ")
                            if checkReference {
                                expectClose(
                                    fast, reference, reduction: k * k, "\(g) \(activation) residual \(withResidual)")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: [1, 7, 14, 15, 16, 17, 31, 56])
    func swiftKernelMatchesReference(_ width: Int) {
        let shapes: [(k: Int, stride: (Int, Int), dilation: (Int, Int), pads: (Int, Int, Int, Int))] = [
            (3, (1, 1), (1, 1), (1, 1, 1, 1)), (3, (2, 2), (1, 1), (1, 1, 1, 1)), (3, (2, 2), (1, 1), (0, 0, 1, 1)),
            (5, (1, 1), (1, 1), (2, 2, 2, 2)), (5, (2, 2), (1, 1), (1, 2, 2, 1)), (7, (1, 1), (1, 1), (3, 3, 3, 3)),
            (3, (1, 1), (2, 2), (2, 2, 2, 2)), (3, (1, 2), (1, 1), (1, 1, 1, 1)),
        ]
        var random = TestRandom(seed: UInt64(width))
        for shape in shapes {
            for height in [1, 6, 19] {
                let g = geometry(
                    c: 1, h: height, w: width, m: 1, groups: 1, k: (shape.k, shape.k), stride: shape.stride,
                    dilation: shape.dilation, pads: shape.pads)
                if g.outputHeight < 1 || g.outputWidth < 1 { continue }
                let layout = DepthwiseLayout(geometry: g)
                let input = random.array(height * width)
                let weights = random.array(shape.k * shape.k)
                let residual = random.array(g.outputHeight * g.outputWidth)
                let activations: [FusedActivation] = [
                    .none, .relu, .clip(min: 0, max: 6), .sigmoid, .silu, .hardSwish,
                ]
                for activation in activations {
                    for avx2 in [false] + (DepthwiseConv2D.usesAVX2Rows ? [true] : []) {
                        for withResidual in [true, false] {
                            var fast = [Float](repeating: .nan, count: residual.count)
                            var reference = fast
                            var scratch = [Float](repeating: 0, count: layout.planeElementCount)
                            input.withUnsafeBufferPointer { x in
                                weights.withUnsafeBufferPointer { w in
                                    residual.withUnsafeBufferPointer { r in
                                        scratch.withUnsafeMutableBufferPointer { s in
                                            DepthwiseConv2D.clearPlane(layout: layout, scratch: s.baseAddress!)
                                            fast.withUnsafeMutableBufferPointer {
                                                DepthwiseConv2D.runChannel(
                                                    layout: layout, input: x.baseAddress!, weights: w.baseAddress!,
                                                    bias: 0.25,
                                                    residual: withResidual ? r.baseAddress! : nil,
                                                    output: $0.baseAddress!,
                                                    activation: activation, scratch: s.baseAddress!, avx2: avx2)
                                            }
                                            reference.withUnsafeMutableBufferPointer {
                                                DepthwiseConv2D.runChannelReference(
                                                    layout: layout, input: x.baseAddress!, weights: w.baseAddress!,
                                                    bias: 0.25,
                                                    residual: withResidual ? r.baseAddress! : nil,
                                                    output: $0.baseAddress!,
                                                    activation: activation, scratch: s.baseAddress!)
                                            }
                                        }
                                    }
                                }
                            }
                            expectClose(
                                fast, reference, reduction: shape.k * shape.k,
                                "\(g) \(activation) avx2 \(avx2) residual \(withResidual)")
                        }
                    }
                }
            }
        }
    }
}

/// The max-pooling fast path (no dilation) against the reference, with NaN and widths around the
/// vector width.
@Suite struct MaxPoolFastPathTests {
    @Test(arguments: [1, 2, 7, 14, 15, 16, 17, 31, 32, 33, 37, 112])
    func matchesReferenceWithNaN(_ width: Int) {
        for (k, s, p) in [(3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2), (3, 2, 0), (1, 2, 0), (4, 2, 1), (7, 1, 3)] {
            guard
                let outH = Pool2DGeometry.outputSize(
                    input: 7, kernel: k, stride: s, dilation: 1, padBegin: p, padEnd: p, ceilMode: false),
                let outW = Pool2DGeometry.outputSize(
                    input: width, kernel: k, stride: s, dilation: 1, padBegin: p, padEnd: p, ceilMode: true)
            else { continue }
            let g = Pool2DGeometry(
                batch: 1, channels: 3, inputHeight: 7, inputWidth: width, outputHeight: outH, outputWidth: outW,
                kernelHeight: k, kernelWidth: k, strideHeight: s, strideWidth: s, padTop: p, padLeft: p, padBottom: p,
                padRight: p)
            var random = TestRandom(seed: UInt64(width))
            var input = random.array(3 * 7 * width)
            input[input.count / 2] = .nan
            input[width - 1] = .nan
            var fast = [Float](repeating: 7, count: 3 * outH * outW)
            var reference = fast
            input.withUnsafeBufferPointer { x in
                fast.withUnsafeMutableBufferPointer {
                    Pool2D.run(
                        .max, geometry: g, input: x.baseAddress!, output: $0.baseAddress!, context: ComputeContext())
                }
                reference.withUnsafeMutableBufferPointer {
                    Pool2D.reference(.max, geometry: g, input: x.baseAddress!, output: $0.baseAddress!)
                }
            }
            #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern), "\(g)")
        }
    }
}
