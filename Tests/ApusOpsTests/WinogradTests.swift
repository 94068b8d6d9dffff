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

    /// The C transforms — AVX-512 (`winograd.c`) where the CPU has it, AVX2 (`winograd_avx2.c`)
    /// where it has that — give the Swift transforms' bits: every tile's float of V (a row's
    /// padding past the last tile is the transforms' own scratch, which they fill differently:
    /// the AVX-512 kernel puts several tile rows of a narrow map in one vector) and nothing outside
    /// the rows, and every output value, for odd sizes, pads, partial groups of 8 and 16 tiles,
    /// maps four tiles wide (whose tile rows the AVX-512 kernel takes four at a time, here also a
    /// partial last group) and eight, and a channel range that does not start at 0.
    @Test(
        .enabled(if: PackedGemm.hasAVX512 || PackedGemm.cpuHasAVX2, "needs AVX-512 or AVX2"),
        arguments: [
            geometry(c: 3, h: 9, w: 7, m: 5, k: (3, 3), pads: (1, 1, 1, 1)),
            geometry(c: 5, h: 13, w: 22, m: 9, k: (3, 3), pads: (0, 0, 0, 0)),
            geometry(c: 6, h: 17, w: 15, m: 4, k: (3, 3), pads: (1, 2, 0, 1)),
            geometry(c: 4, h: 56, w: 56, m: 4, k: (3, 3), pads: (1, 1, 1, 1)),
            geometry(c: 2, h: 7, w: 7, m: 3, k: (3, 3), pads: (1, 1, 1, 1)),
            geometry(c: 3, h: 6, w: 70, m: 2, k: (3, 3), pads: (2, 2, 2, 2)),
            geometry(c: 2, h: 1, w: 131, m: 2, k: (3, 3), pads: (1, 1, 1, 1)),
            geometry(c: 3, h: 14, w: 14, m: 3, k: (3, 3), pads: (1, 1, 1, 1)),
            geometry(c: 2, h: 21, w: 13, m: 3, k: (3, 3), pads: (1, 1, 1, 1)),
            geometry(c: 3, h: 9, w: 31, m: 2, k: (3, 3), pads: (1, 1, 1, 1)),
            geometry(c: 2, h: 30, w: 29, m: 3, k: (3, 3), pads: (1, 1, 1, 1)),
        ])
    func vectorTransformsMatchSwiftBitwise(_ g: Conv2DGeometry) {
        var random = TestRandom(seed: UInt64(g.inputWidth * 100 + g.inputHeight))
        var input = random.array(g.inputChannels * g.inputHeight * g.inputWidth)
        input[0] = -0.0
        let (_, _, tileCount, tileStride) = WinogradConv2D.tiles(g)
        let positionStride = WinogradConv2D.positionStride(channels: g.inputChannels, tileStride: tileStride)
        let vCount = WinogradConv2D.positions * positionStride + 64
        let mCount =
            WinogradConv2D.positions
            * WinogradConv2D.positionStride(channels: g.outputChannels, tileStride: tileStride) + 64
        let m = random.array(mCount)
        let bias = random.array(g.outputChannels)
        let channels = 1..<g.inputChannels
        let outputs = 1..<g.outputChannels
        func transforms(vector: Bool, avx512: Bool = false) -> (v: [UInt32], output: [UInt32]) {
            var v = [Float](repeating: .nan, count: vCount)
            var output = [Float](repeating: .nan, count: g.outputChannels * g.outputHeight * g.outputWidth)
            var scratch = [Float](repeating: .nan, count: WinogradConv2D.scratchCount(g))
            input.withUnsafeBufferPointer { x in
                v.withUnsafeMutableBufferPointer { vp in
                    scratch.withUnsafeMutableBufferPointer { sp in
                        WinogradConv2D.transformInput(
                            geometry: g, input: x.baseAddress!, channels: channels, v: vp.baseAddress!,
                            scratch: sp.baseAddress!, vector: vector, avx512: avx512)
                    }
                }
            }
            m.withUnsafeBufferPointer { mp in
                bias.withUnsafeBufferPointer { bp in
                    output.withUnsafeMutableBufferPointer { op in
                        scratch.withUnsafeMutableBufferPointer { sp in
                            WinogradConv2D.transformOutput(
                                geometry: g, m: mp.baseAddress!, channels: outputs, bias: bp.baseAddress,
                                output: op.baseAddress!, scratch: sp.baseAddress!, vector: vector, avx512: avx512)
                        }
                    }
                }
            }
            return (v.map(\.bitPattern), output.map(\.bitPattern))
        }
        /// V's floats of real tiles, and a NaN (never written) everywhere outside the rows.
        func tilesOfV(_ v: [UInt32]) -> [UInt32] {
            var kept: [UInt32] = []
            for index in v.indices {
                let inPosition = index % positionStride
                let position = index / positionStride
                if position >= WinogradConv2D.positions || inPosition >= g.inputChannels * tileStride {
                    kept.append(v[index] == Float.nan.bitPattern ? 0 : 1)
                } else if inPosition % tileStride < tileCount {
                    kept.append(v[index])
                }
            }
            return kept
        }
        let swift = transforms(vector: false)
        var kernels: [(name: String, avx512: Bool)] = []
        if PackedGemm.hasAVX512 { kernels.append(("AVX-512", true)) }
        if PackedGemm.cpuHasAVX2 { kernels.append(("AVX2", false)) }
        for (name, avx512) in kernels {
            let kernel = transforms(vector: true, avx512: avx512)
            let vMismatches = zip(tilesOfV(swift.v), tilesOfV(kernel.v)).filter { $0 != $1 }.count
            let outputMismatches = zip(swift.output, kernel.output).filter { $0 != $1 }.count
            #expect(vMismatches == 0, "\(name), \(g): \(vMismatches) floats of V differ")
            #expect(outputMismatches == 0, "\(name), \(g): \(outputMismatches) output values differ")
            // The transforms wrote something: the first written channel's values are not the NaN fill.
            #expect(kernel.v[tileStride] != Float.nan.bitPattern, "\(name)")
            #expect(kernel.output[g.outputHeight * g.outputWidth] != Float.nan.bitPattern, "\(name)")
        }
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
            if one.plan.algorithm == .im2col && PackedGemm.hasAVX512
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
