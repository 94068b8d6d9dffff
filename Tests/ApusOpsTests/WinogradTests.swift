import Testing

@testable import ApusOps

/// 3×3 stride-1 layers of awkward sizes: not multiples of the 4×4 output tile, of 8 rows or of
/// 16 tiles; asymmetric and zero pads; batch 2.
let winogradCases: [ConvCase] = [
    ConvCase(geometry: geometry(c: 3, h: 9, w: 7, m: 5, k: (3, 3), pads: (1, 1, 1, 1))),
    ConvCase(geometry: geometry(c: 8, h: 4, w: 4, m: 8, k: (3, 3), pads: (1, 1, 1, 1)), activation: .relu),
    ConvCase(geometry: geometry(c: 5, h: 13, w: 22, m: 9, k: (3, 3), pads: (0, 0, 0, 0)), residual: true),
    ConvCase(
        geometry: geometry(c: 16, h: 17, w: 15, m: 24, k: (3, 3), pads: (1, 2, 0, 1)), residual: true,
        activation: .relu),
    ConvCase(geometry: geometry(n: 2, c: 7, h: 6, w: 5, m: 3, k: (3, 3), pads: (2, 2, 2, 2)), bias: false),
    ConvCase(geometry: geometry(c: 1, h: 3, w: 3, m: 1, k: (3, 3))),
    ConvCase(geometry: geometry(c: 32, h: 28, w: 28, m: 40, k: (3, 3), pads: (1, 1, 1, 1)), activation: .silu),
    ConvCase(geometry: geometry(c: 4, h: 1, w: 40, m: 4, k: (3, 3), pads: (1, 1, 1, 1))),
]

@Suite struct WinogradTests {
    init() throws { try BLAS.load() }

    @Test(arguments: winogradCases)
    func matchesReference(_ c: ConvCase) {
        #expect(WinogradConv2D.supports(c.geometry))
        let (fast, reference, plan) = runConv(c, algorithm: .winograd, planWithWeights: true)
        #expect(plan.algorithm == .winograd)
        expectClose(fast, reference, reduction: c.geometry.reductionLength, "\(c)")
    }

    /// The transforms themselves: a single tile of a single channel against hand-derived values.
    /// With a filter that is 1 at its centre only, the output is the input shifted by the pads.
    @Test func identityFilterCopiesTheInput() {
        let g = geometry(c: 1, h: 6, w: 6, m: 1, k: (3, 3), pads: (1, 1, 1, 1))
        let input = (0..<36).map { Float($0) - 10 }
        var weights = [Float](repeating: 0, count: 9)
        weights[4] = 1
        let plan = weights.withUnsafeBufferPointer {
            Conv2DPlan(geometry: g, algorithm: .winograd, weights: $0.baseAddress)
        }
        var output = [Float](repeating: .nan, count: 36)
        let bytes = plan.workspaceByteCount(threadCount: 1)
        withWorkspace(bytes) { workspace in
            input.withUnsafeBufferPointer { x in
                weights.withUnsafeBufferPointer { w in
                    output.withUnsafeMutableBufferPointer { out in
                        plan.run(
                            input: x.baseAddress!, weights: w.baseAddress!, bias: nil, residual: nil,
                            output: out.baseAddress!, activation: .none,
                            context: ComputeContext(threadCount: 1, workspace: workspace, workspaceByteCount: bytes))
                    }
                }
            }
        }
        let worst = zip(output, input).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-5, "max error \(worst)")
    }

    /// Splitting the transforms and the 36 products over threads never changes a bit.
    @Test func bitwiseIdenticalForOneAndTwoThreads() {
        let c = ConvCase(
            geometry: geometry(c: 24, h: 30, w: 29, m: 40, k: (3, 3), pads: (1, 1, 1, 1)), residual: true,
            activation: .relu)
        let one = runConv(c, algorithm: .winograd, threads: 1, planWithWeights: true)
        let two = runConv(c, algorithm: .winograd, threads: 2, planWithWeights: true)
        #expect(one.fast.withUnsafeBytes { a in two.fast.withUnsafeBytes { b in a.elementsEqual(b) } })
        expectClose(two.fast, two.reference, reduction: c.geometry.reductionLength)
    }

    /// The plan picks Winograd only for supported layers with enough tiles, and only when it has
    /// the weights.
    @Test func choice() {
        let big = geometry(c: 64, h: 56, w: 56, m: 64, k: (3, 3), pads: (1, 1, 1, 1))
        let weights = [Float](repeating: 0.5, count: 64 * 64 * 9)
        let withWeights = weights.withUnsafeBufferPointer { Conv2DPlan(geometry: big, weights: $0.baseAddress) }
        #expect(withWeights.algorithm == .winograd)
        #expect(Conv2DPlan(geometry: big).algorithm == .im2col)
        let strided = geometry(c: 64, h: 56, w: 56, m: 64, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1))
        #expect(!WinogradConv2D.supports(strided))
        let grouped = geometry(c: 64, h: 56, w: 56, m: 64, groups: 2, k: (3, 3), pads: (1, 1, 1, 1))
        #expect(!WinogradConv2D.supports(grouped))
    }
}

/// Every convolution case again with the weights known at plan time (packed weights, Winograd
/// where the plan picks it).
@Suite struct PlannedWeightsConvTests {
    init() throws { try BLAS.load() }

    @Test(arguments: convCases)
    func matchesReference(_ c: ConvCase) {
        let (fast, reference, _) = runConv(c, planWithWeights: true)
        expectClose(fast, reference, reduction: c.geometry.reductionLength, "\(c)")
    }

    @Test func bitwiseIdenticalForOneAndTwoThreads() {
        let cases = [
            ConvCase(geometry: geometry(c: 64, h: 40, w: 40, m: 32, k: (1, 1)), activation: .relu),
            ConvCase(geometry: geometry(c: 64, h: 5, w: 5, m: 128, k: (3, 3), pads: (1, 1, 1, 1))),
            // Column tiles that split output rows: stride 2 (vector deinterleave) and 5×5 stride 1.
            ConvCase(geometry: geometry(c: 64, h: 90, w: 90, m: 24, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1))),
            ConvCase(
                geometry: geometry(c: 32, h: 50, w: 37, m: 16, k: (5, 5), pads: (2, 1, 2, 3)), residual: true,
                activation: .relu),
        ]
        for c in cases {
            let one = runConv(c, threads: 1, planWithWeights: true)
            if one.plan.algorithm == .im2col && PackedGemm.isAvailable
                && c.geometry.reductionLength * c.geometry.outputHeight * c.geometry.outputWidth > 1 << 19
            {
                #expect(one.plan.tilesFillColumns && one.plan.columnTileCount > 1, "\(c) should fill column tiles")
            }
            let two = runConv(c, threads: 2, planWithWeights: true)
            #expect(one.fast.withUnsafeBytes { a in two.fast.withUnsafeBytes { b in a.elementsEqual(b) } }, "\(c)")
            expectClose(two.fast, two.reference, reduction: c.geometry.reductionLength, "\(c)")
        }
    }
}
