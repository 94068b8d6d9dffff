import Testing

@testable import ApusOps

/// A small deterministic generator, so failures reproduce.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
    }
    mutating func array(_ count: Int) -> [Float] { (0..<count).map { _ in next() } }
}

/// Runs `body` with a zeroed, 64-byte aligned workspace of `byteCount` bytes.
func withWorkspace<R>(_ byteCount: Int, _ body: (UnsafeMutableRawPointer?) -> R) -> R {
    if byteCount == 0 { return body(nil) }
    let raw = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
    defer { raw.deallocate() }
    raw.initializeMemory(as: UInt8.self, repeating: 0xFF, count: byteCount)
    return body(raw)
}

/// Checks `actual` against `expected` elementwise with tolerance `1e-5·sqrt(reduction)` relative to
/// the largest magnitude of `expected` (at least 1).
func expectClose(
    _ actual: [Float], _ expected: [Float], reduction: Int, _ label: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.count == expected.count, "\(label): count", sourceLocation: sourceLocation)
    let scale = max(1, expected.map { abs($0) }.max() ?? 1)
    let tolerance = 1e-5 * Float(max(1, reduction)).squareRoot() * scale
    var worst: Float = 0
    var worstIndex = -1
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let error = a.isNaN != e.isNaN ? Float.infinity : (a.isNaN ? 0 : abs(a - e))
        if error > worst {
            worst = error
            worstIndex = i
        }
    }
    #expect(
        worst <= tolerance, "\(label): max error \(worst) at \(worstIndex) > \(tolerance)",
        sourceLocation: sourceLocation)
}

struct ConvCase: CustomStringConvertible, Sendable {
    var geometry: Conv2DGeometry
    var bias = true
    var residual = false
    var activation: FusedActivation = .none
    var description: String { "\(geometry) bias \(bias) residual \(residual) \(activation)" }
}

/// Runs a plan and the reference on random data; returns (fast, reference) outputs.
///
/// With `planWithWeights` the plan is made knowing the weights, as for a model's constant weights:
/// it may then pack them for the AVX-512 kernel or choose Winograd; `prepacked` then gives it
/// weights packed ahead of time, made from the weights.
func runConv(
    _ c: ConvCase, algorithm: Conv2DPlan.Algorithm? = nil, threads: Int = 1, seed: UInt64 = 1,
    planWithWeights: Bool = false, splitsReduction: Bool = false,
    prepacked: (UnsafePointer<Float>) -> PrepackedWeights? = { _ in nil }
) -> (fast: [Float], reference: [Float], plan: Conv2DPlan) {
    let g = c.geometry
    var random = TestRandom(seed: seed)
    let input = random.array(g.batch * g.inputChannels * g.inputHeight * g.inputWidth)
    let weights = random.array(g.outputChannels * g.inputChannelsPerGroup * g.kernelHeight * g.kernelWidth)
    let bias = random.array(g.outputChannels)
    let outCount = g.batch * g.outputChannels * g.outputHeight * g.outputWidth
    let residual = random.array(outCount)
    var reference = [Float](repeating: 0, count: outCount)
    var fast = [Float](repeating: .nan, count: outCount)
    let plan =
        planWithWeights
        ? weights.withUnsafeBufferPointer {
            Conv2DPlan(
                geometry: g, algorithm: algorithm, weights: $0.baseAddress, prepacked: prepacked($0.baseAddress!),
                splitsReduction: splitsReduction)
        }
        : Conv2DPlan(geometry: g, algorithm: algorithm)
    let biasPointer = c.bias ? bias.withUnsafeBufferPointer { $0.baseAddress } : nil
    let residualPointer = c.residual ? residual.withUnsafeBufferPointer { $0.baseAddress } : nil
    input.withUnsafeBufferPointer { x in
        weights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                residual.withUnsafeBufferPointer { r in
                    let bp = c.bias ? b.baseAddress : nil
                    let rp = c.residual ? r.baseAddress : nil
                    _ = biasPointer
                    _ = residualPointer
                    reference.withUnsafeMutableBufferPointer { out in
                        Conv2DReference.run(
                            geometry: g, input: x.baseAddress!, weights: w.baseAddress!, bias: bp, residual: rp,
                            output: out.baseAddress!, activation: c.activation)
                    }
                    let bytes = plan.workspaceByteCount(threadCount: threads)
                    withWorkspace(bytes) { workspace in
                        let context = ComputeContext(
                            threadCount: threads, workspace: workspace, workspaceByteCount: bytes)
                        fast.withUnsafeMutableBufferPointer { out in
                            plan.run(
                                input: x.baseAddress!, weights: w.baseAddress!, bias: bp, residual: rp,
                                output: out.baseAddress!, activation: c.activation, context: context)
                        }
                    }
                }
            }
        }
    }
    return (fast, reference, plan)
}

func geometry(
    n: Int = 1, c: Int, h: Int, w: Int, m: Int, groups: Int = 1, k: (Int, Int), stride: (Int, Int) = (1, 1),
    dilation: (Int, Int) = (1, 1), pads: (Int, Int, Int, Int) = (0, 0, 0, 0)
) -> Conv2DGeometry {
    Conv2DGeometry(
        batch: n, inputChannels: c, inputHeight: h, inputWidth: w, outputChannels: m, groups: groups,
        kernelHeight: k.0, kernelWidth: k.1, strideHeight: stride.0, strideWidth: stride.1,
        dilationHeight: dilation.0, dilationWidth: dilation.1, padTop: pads.0, padLeft: pads.1, padBottom: pads.2,
        padRight: pads.3)
}

let convCases: [ConvCase] = [
    // 1×1 pointwise, with a column count that is not a multiple of 16 or 64.
    ConvCase(geometry: geometry(c: 8, h: 13, w: 11, m: 12, k: (1, 1))),
    ConvCase(geometry: geometry(c: 8, h: 20, w: 20, m: 40, k: (1, 1)), activation: .relu),
    // 1×1 with stride 2 must go through the general path.
    ConvCase(geometry: geometry(c: 6, h: 10, w: 10, m: 7, k: (1, 1), stride: (2, 2))),
    // 3×3 with odd, asymmetric pads.
    ConvCase(geometry: geometry(c: 3, h: 9, w: 7, m: 5, k: (3, 3), pads: (1, 0, 2, 1)), residual: true),
    // Stride 2 with even sizes.
    ConvCase(geometry: geometry(c: 4, h: 16, w: 16, m: 8, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1))),
    // Dilation 2.
    ConvCase(geometry: geometry(c: 3, h: 12, w: 10, m: 4, k: (3, 3), dilation: (2, 2), pads: (2, 2, 2, 2))),
    // Groups 2.
    ConvCase(geometry: geometry(c: 6, h: 8, w: 9, m: 4, groups: 2, k: (3, 3), pads: (1, 1, 1, 1)), residual: true),
    // Groups 2, pointwise.
    ConvCase(geometry: geometry(c: 6, h: 5, w: 7, m: 4, groups: 2, k: (1, 1))),
    // Kernel bigger than the input, made to fit by pads.
    ConvCase(geometry: geometry(c: 2, h: 3, w: 2, m: 3, k: (5, 5), pads: (2, 2, 2, 2)), activation: .hardSwish),
    // Batch 2.
    ConvCase(geometry: geometry(n: 2, c: 3, h: 7, w: 6, m: 4, k: (3, 2), stride: (1, 2), pads: (1, 0, 1, 1))),
    ConvCase(geometry: geometry(n: 2, c: 5, h: 6, w: 6, m: 3, k: (1, 1)), residual: true),
    // 1-D (height 1).
    ConvCase(geometry: geometry(c: 4, h: 1, w: 30, m: 6, k: (1, 5), stride: (1, 3), pads: (0, 2, 0, 1))),
    // Many columns: several column tiles.
    ConvCase(
        geometry: geometry(c: 3, h: 30, w: 29, m: 16, k: (3, 3), pads: (1, 1, 1, 1)), activation: .leakyRelu(alpha: 0.1)
    ),
    // Many output channels, few columns: row tiles.
    ConvCase(geometry: geometry(c: 16, h: 4, w: 4, m: 96, k: (3, 3), pads: (1, 1, 1, 1)), residual: true),
    // Depthwise 3×3 and 5×5, stride 1 and 2, widths around 16.
    ConvCase(geometry: geometry(c: 4, h: 17, w: 17, m: 4, groups: 4, k: (3, 3), pads: (1, 1, 1, 1)), activation: .relu),
    ConvCase(
        geometry: geometry(c: 3, h: 16, w: 32, m: 3, groups: 3, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
        residual: true, activation: .clip(min: 0, max: 6)),
    ConvCase(geometry: geometry(c: 3, h: 15, w: 15, m: 3, groups: 3, k: (3, 3), stride: (2, 2), pads: (0, 0, 1, 1))),
    ConvCase(
        geometry: geometry(c: 2, h: 20, w: 33, m: 2, groups: 2, k: (5, 5), pads: (2, 2, 2, 2)), activation: .hardSwish),
    ConvCase(geometry: geometry(c: 2, h: 20, w: 40, m: 2, groups: 2, k: (5, 5), stride: (2, 2), pads: (2, 2, 2, 2))),
    ConvCase(
        geometry: geometry(
            n: 2, c: 3, h: 9, w: 8, m: 3, groups: 3, k: (7, 4), stride: (3, 1), dilation: (1, 2), pads: (3, 1, 2, 3)),
        activation: .sigmoid),
    ConvCase(geometry: geometry(c: 2, h: 5, w: 31, m: 2, groups: 2, k: (3, 3), dilation: (2, 2), pads: (2, 2, 2, 2))),
    // Depthwise where kernel exceeds input.
    ConvCase(geometry: geometry(c: 2, h: 2, w: 3, m: 2, groups: 2, k: (5, 5), pads: (2, 2, 2, 2))),
]

@Suite struct ConvTests {
    init() throws { try BLAS.load() }

    @Test(arguments: convCases)
    func matchesReference(_ c: ConvCase) {
        let (fast, reference, _) = runConv(c)
        expectClose(fast, reference, reduction: c.geometry.reductionLength, "\(c)")
    }

    @Test func algorithmChoice() {
        #expect(Conv2DPlan(geometry: convCases[0].geometry).algorithm == .pointwise)
        #expect(Conv2DPlan(geometry: convCases[2].geometry).algorithm == .im2col)
        // At most four input channels: the AVX-512 direct kernel when there is one.
        #expect(Conv2DPlan(geometry: convCases[3].geometry).algorithm == (PackedGemm.hasAVX512 ? .direct : .im2col))
        #expect(Conv2DPlan(geometry: convCases[5].geometry).algorithm == .im2col)
        #expect(Conv2DPlan(geometry: convCases[14].geometry).algorithm == .depthwise)
    }

    /// Ungrouped cases through im2col too, those the direct kernel takes included.
    @Test func everyUngroupedCaseThroughIm2col() {
        for c in convCases where c.geometry.groups == 1 {
            let (fast, reference, plan) = runConv(c, algorithm: .im2col)
            #expect(plan.algorithm == .im2col)
            expectClose(fast, reference, reduction: c.geometry.reductionLength, "\(c)")
        }
    }

    /// Depthwise convolutions through the im2col path too: both paths agree with the reference.
    @Test func depthwiseThroughIm2col() {
        for c in convCases where c.geometry.isDepthwise {
            let (fast, reference, _) = runConv(c, algorithm: .im2col)
            expectClose(fast, reference, reduction: c.geometry.reductionLength, "\(c)")
        }
    }

    /// Splitting work over threads never changes a bit of the result.
    @Test func bitwiseIdenticalForOneAndTwoThreads() {
        let cases = [
            ConvCase(geometry: geometry(c: 8, h: 40, w: 40, m: 24, k: (3, 3), pads: (1, 1, 1, 1)), residual: true),
            ConvCase(geometry: geometry(c: 64, h: 40, w: 40, m: 32, k: (1, 1)), activation: .relu),
            ConvCase(geometry: geometry(c: 64, h: 5, w: 5, m: 128, k: (3, 3), pads: (1, 1, 1, 1))),
            ConvCase(
                geometry: geometry(
                    n: 2, c: 8, h: 21, w: 21, m: 8, groups: 8, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1))),
        ]
        for c in cases {
            let one = runConv(c, threads: 1)
            let two = runConv(c, threads: 2)
            #expect(one.fast.withUnsafeBytes { a in two.fast.withUnsafeBytes { b in a.elementsEqual(b) } }, "\(c)")
            #expect(one.plan.taskCount > 1, "\(c) should split into several tasks")
            expectClose(two.fast, two.reference, reduction: c.geometry.reductionLength, "\(c)")
        }
    }

    /// Pointwise layers marked for a split reduction (``Conv2DPlan/reductionSplit(_:algorithm:batchesColumns:packed:)``:
    /// the projections of inverted residual blocks) multiply the two halves of their input
    /// channels apart and add them: close to the reference, the same bits at 1, 2 and 3 threads,
    /// and the same bits from weights prepacked whole (read in place, range by range). Unmarked or
    /// ineligible layers keep the whole reduction.
    @Test(.enabled(if: PackedGemm.hasAVX512, "the split runs on the AVX-512 kernel"))
    func splitReductionMatchesReference() {
        var keep: [PrepackedWeightsTests.Storage] = []
        let cases = [
            ConvCase(geometry: geometry(c: 576, h: 14, w: 14, m: 96, k: (1, 1)), residual: true),
            ConvCase(geometry: geometry(c: 384, h: 14, w: 14, m: 64, k: (1, 1)), bias: false),
            ConvCase(geometry: geometry(c: 960, h: 7, w: 7, m: 160, k: (1, 1)), activation: .clip(min: 0, max: 6)),
            // A split at 96 of 200 channels, inside the kernel's first 128-step block; 99 positions.
            ConvCase(geometry: geometry(c: 200, h: 9, w: 11, m: 36, k: (1, 1)), residual: true, activation: .relu),
        ]
        for c in cases {
            let runs = [1, 2, 3].map { runConv(c, threads: $0, planWithWeights: true, splitsReduction: true) }
            #expect(runs[0].plan.reductionSplit == (c.geometry.inputChannels / 2 + 8) / 16 * 16, "\(c)")
            for run in runs.dropFirst() {
                #expect(run.fast.withUnsafeBytes { a in runs[0].fast.withUnsafeBytes { a.elementsEqual($0) } }, "\(c)")
            }
            expectClose(runs[0].fast, runs[0].reference, reduction: c.geometry.reductionLength, "\(c)")
            let whole = runConv(c, planWithWeights: true)
            #expect(whole.plan.reductionSplit == nil, "\(c) unmarked")
            #expect(whole.fast != runs[0].fast, "\(c): the split should sum in another order")
            let prepacked = runConv(c, threads: 2, planWithWeights: true, splitsReduction: true) { weights in
                PrepackedWeightsTests.prepacked(c.geometry, weights, keep: &keep)
            }
            #expect(prepacked.plan.usesPrepackedWeights && prepacked.plan.reductionSplit != nil, "\(c)")
            #expect(prepacked.fast == runs[0].fast, "\(c) from prepacked weights")
        }
        // Fewer than twice as many inputs as outputs, fewer than 128 inputs, a map over 196
        // positions, or a batch multiplied at once (``Conv2DPlan/batchesColumns``): whole.
        for g in [
            geometry(c: 192, h: 14, w: 14, m: 128, k: (1, 1)), geometry(c: 96, h: 14, w: 14, m: 16, k: (1, 1)),
            geometry(c: 576, h: 28, w: 28, m: 96, k: (1, 1)), geometry(n: 2, c: 576, h: 14, w: 14, m: 96, k: (1, 1)),
        ] {
            #expect(
                runConv(ConvCase(geometry: g), planWithWeights: true, splitsReduction: true).plan.reductionSplit == nil,
                "\(g)")
        }
    }

    /// Batches of small maps multiply all images at once (``Conv2DPlan/batchesColumns``), the
    /// product's tiles crossing image boundaries; with and without weights at plan time (packed
    /// kernel or OpenBLAS), against the reference and bitwise for one and two threads.
    @Test func batchedColumnsMatchReference() {
        let cases = [
            // 540 columns in two tiles of 272 and 268: the cut falls inside image 7.
            ConvCase(
                geometry: geometry(n: 15, c: 32, h: 6, w: 6, m: 64, k: (3, 3), pads: (1, 1, 1, 1)), residual: true),
            ConvCase(geometry: geometry(n: 4, c: 24, h: 5, w: 6, m: 48, k: (1, 1)), residual: true, activation: .relu),
            ConvCase(geometry: geometry(n: 4, c: 16, h: 7, w: 7, m: 128, k: (3, 3), pads: (1, 1, 1, 1))),
            ConvCase(
                geometry: geometry(n: 3, c: 16, h: 14, w: 13, m: 32, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
                bias: false, activation: .clip(min: 0, max: 6)),
            ConvCase(geometry: geometry(n: 2, c: 8, h: 4, w: 4, m: 16, k: (1, 1)), activation: .silu),
        ]
        for c in cases {
            // The column paths by name: with AVX-512 the 3 × 3 layers would take the taps path.
            let algorithm: Conv2DPlan.Algorithm = c.geometry.isPointwise ? .pointwise : .im2col
            for withWeights in [false, true] {
                let one = runConv(c, algorithm: algorithm, threads: 1, planWithWeights: withWeights)
                let two = runConv(c, algorithm: algorithm, threads: 2, planWithWeights: withWeights)
                #expect(one.plan.batchesColumns, "\(c) should multiply its images at once")
                #expect(one.fast.withUnsafeBytes { a in two.fast.withUnsafeBytes { b in a.elementsEqual(b) } }, "\(c)")
                expectClose(one.fast, one.reference, reduction: c.geometry.reductionLength, "\(c)")
            }
        }
        #expect(
            runConv(cases[0], algorithm: .im2col, threads: 2).plan.taskCount > 1,
            "the first case should split into several tiles")
    }

    @Test func outputSize() {
        #expect(Conv2DGeometry.outputSize(input: 7, kernel: 3, stride: 2, dilation: 1, padBegin: 1, padEnd: 1) == 4)
        #expect(Conv2DGeometry.outputSize(input: 2, kernel: 5, stride: 1, dilation: 1, padBegin: 0, padEnd: 0) == nil)
        #expect(
            Conv2DGeometry.outputSize(input: .max, kernel: 3, stride: 1, dilation: 1, padBegin: 1, padEnd: 1) == nil)
    }
}
