import Testing

@testable import ApusOps

/// Weights packed ahead of time (``Conv2DPlan/prepack(geometry:weights:target:threadCount:)``,
/// as `apus convert` stores them) and handed to a plan, which reads them in place.
@Suite(.enabled(if: PackedGemm.hasAVX512)) struct PrepackedWeightsTests {
    init() throws { try BLAS.load() }

    /// Packed floats in memory the test owns, as an artifact's mapping would hold them.
    final class Storage {
        let values: UnsafeMutablePointer<Float>
        let count: Int
        init(_ prepacked: Conv2DPlan.Prepacked) {
            count = prepacked.count
            values = .allocate(capacity: max(1, count))
            prepacked.write(values)
        }
        deinit { values.deallocate() }
    }

    /// One layer per packed layout: pointwise and grouped im2col (gemm), strided (taps), 3 × 3
    /// stride 1 on a map with enough tiles (winograd).
    static let cases: [(ConvCase, PrepackedWeights.Layout)] = [
        (ConvCase(geometry: geometry(c: 32, h: 9, w: 11, m: 24, k: (1, 1)), residual: true, activation: .relu), .gemm),
        (ConvCase(geometry: geometry(c: 16, h: 10, w: 10, m: 32, groups: 2, k: (3, 3), pads: (1, 1, 1, 1))), .gemm),
        (
            ConvCase(
                geometry: geometry(c: 24, h: 21, w: 21, m: 40, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
                activation: .silu), .taps
        ),
        (
            ConvCase(
                geometry: geometry(c: 16, h: 20, w: 20, m: 24, k: (3, 3), pads: (1, 1, 1, 1)), residual: true,
                activation: .clip(min: -1, max: 1)), .winograd
        ),
    ]

    /// Packs `weights` for `g` the way `apus convert` does, into test-owned storage; `change`
    /// may alter the packed floats first.
    static func prepacked(
        _ g: Conv2DGeometry, _ weights: UnsafePointer<Float>, target: PrepackedWeights.Target = .avx512,
        keep: inout [Storage], change: (UnsafeMutablePointer<Float>, Int) -> Void = { _, _ in }
    ) -> PrepackedWeights? {
        guard let prepacked = Conv2DPlan.prepack(geometry: g, weights: weights, target: target) else { return nil }
        let storage = Storage(prepacked)
        change(storage.values, storage.count)
        keep.append(storage)
        return PrepackedWeights(
            layout: prepacked.layout, format: prepacked.format, values: storage.values, count: storage.count,
            owner: storage)
    }

    /// The plan reads the prepacked floats in place and computes what the plan that packs the
    /// weights itself computes, bit for bit, at 1 and 2 threads; both match the reference.
    @Test(arguments: cases)
    func prepackedPlanIsBitwiseThePackingPlan(_ c: ConvCase, _ layout: PrepackedWeights.Layout) {
        var keep: [Storage] = []
        let packing = runConv(c, planWithWeights: true)
        #expect(!packing.plan.usesPrepackedWeights)
        for threads in [1, 2] {
            let prepacked = runConv(c, threads: threads, planWithWeights: true) { weights in
                let p = Self.prepacked(c.geometry, weights, keep: &keep)
                #expect(p?.layout == layout, "\(c)")
                return p
            }
            #expect(prepacked.plan.usesPrepackedWeights, "\(c)")
            #expect(prepacked.plan.algorithm == packing.plan.algorithm)
            #expect(prepacked.fast == packing.fast, "\(c) at \(threads) threads")
            expectClose(prepacked.fast, prepacked.reference, reduction: c.geometry.reductionLength, "\(c)")
        }
    }

    /// The kernels really read the prepacked floats, not the plain weights: one changed packed
    /// value changes the output.
    @Test(arguments: cases)
    func packedValuesAreRead(_ c: ConvCase, _ layout: PrepackedWeights.Layout) {
        var keep: [Storage] = []
        let packing = runConv(c, planWithWeights: true)
        let changed = runConv(c, planWithWeights: true) { weights in
            Self.prepacked(c.geometry, weights, keep: &keep) { values, _ in values[0] += 0.25 }
        }
        #expect(changed.plan.usesPrepackedWeights)
        #expect(changed.fast != packing.fast, "\(c)")
    }

    /// Prepacked weights of another layout or size are ignored: the plan packs the weights itself.
    @Test func mismatchedPrepackedWeightsAreIgnored() {
        var keep: [Storage] = []
        for (c, layout) in Self.cases {
            let packing = runConv(c, planWithWeights: true)
            let other = PrepackedWeights.Layout.allCases.first { $0 != layout }!
            let wrongLayout = runConv(c, planWithWeights: true) { weights in
                Self.prepacked(c.geometry, weights, keep: &keep).map {
                    PrepackedWeights(layout: other, values: $0.values, count: $0.count, owner: keep.last!)
                }
            }
            let shortCount = runConv(c, planWithWeights: true) { weights in
                Self.prepacked(c.geometry, weights, keep: &keep).map {
                    PrepackedWeights(layout: layout, values: $0.values, count: $0.count - 1, owner: keep.last!)
                }
            }
            let otherFormat = runConv(c, planWithWeights: true) { weights in
                Self.prepacked(c.geometry, weights, keep: &keep).map {
                    PrepackedWeights(
                        layout: layout, format: .openBLAS, values: $0.values, count: $0.count, owner: keep.last!)
                }
            }
            for result in [wrongLayout, shortCount, otherFormat] {
                #expect(!result.plan.usesPrepackedWeights, "\(c)")
                #expect(result.fast == packing.fast, "\(c)")
            }
        }
    }

    /// Layers whose plans read the plain weights (depthwise, the few-channel stem kernel) get
    /// nothing to store.
    @Test func nothingToPackForDepthwiseAndStemLayers() {
        for g in [
            geometry(c: 32, h: 14, w: 14, m: 32, groups: 32, k: (3, 3), pads: (1, 1, 1, 1)),
            geometry(c: 3, h: 32, w: 32, m: 16, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
        ] {
            let weights = [Float](repeating: 0.5, count: g.outputChannels * g.inputChannelsPerGroup * 9)
            for target in PrepackedWeights.Target.allCases {
                let packed = weights.withUnsafeBufferPointer {
                    Conv2DPlan.prepack(geometry: g, weights: $0.baseAddress!, target: target)
                }
                #expect(packed == nil, "\(g) for \(target)")
            }
        }
    }

    /// The attribute names the layout and this build's panel format; another format is not read.
    @Test func attributeNamesLayoutAndFormat() {
        for layout in PrepackedWeights.Layout.allCases {
            for format in PrepackedWeights.Format.allCases {
                let parsed = PrepackedWeights.layout(fromAttribute: PrepackedWeights.attribute(layout, format: format))
                #expect(parsed?.layout == layout && parsed?.format == format)
            }
            #expect(PrepackedWeights.layout(fromAttribute: "\(layout.rawValue)/p16k256") == nil)
            #expect(PrepackedWeights.layout(fromAttribute: "\(layout.rawValue)/o4k256") == nil)
        }
        #expect(PrepackedWeights.attribute(.taps) == "taps/p8k128")
        #expect(PrepackedWeights.attribute(.gemm, format: .openBLAS) == "gemm/o4k384")
        for text in ["", "taps", "taps/", "/p8k128", "im2col/p8k128", "taps/p8k128/x", "gemm/o4k384/"] {
            #expect(PrepackedWeights.layout(fromAttribute: text) == nil, "\(text)")
        }
    }
}

/// Weights packed ahead of time for CPUs with AVX2 but no AVX-512 (`apus convert --prepack-for
/// avx2`): OpenBLAS's layout for the layers its kernel runs, the AVX2 kernel's panels for short
/// reductions. On such a CPU the plans read them in place, bit for bit what packing at load gives.
@Suite(
    .enabled(
        if: !PackedGemm.hasAVX512 && PackedGemm.isAvailable && BLASPackedMatrix.isAvailable,
        "plans read OpenBLAS's layout on CPUs with AVX2 and without AVX-512"))
struct PrepackedForAVX2Tests {
    init() throws { try BLAS.load() }

    /// A pointwise layer and an ungrouped strided one (OpenBLAS's kernel, `gemm/o4k384`), a 3 × 3
    /// stride-1 layer (the 36 Winograd products on it, `winograd/o4k384`), and a short reduction
    /// into more than 16 channels (the AVX2 kernel's panels, `gemm/p8k128`).
    static let cases: [(ConvCase, PrepackedWeights.Layout, PrepackedWeights.Format)] = [
        (
            ConvCase(geometry: geometry(c: 70, h: 9, w: 11, m: 22, k: (1, 1)), residual: true, activation: .relu),
            .gemm, .openBLAS
        ),
        (
            ConvCase(
                geometry: geometry(c: 24, h: 21, w: 21, m: 40, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
                activation: .silu), .gemm, .openBLAS
        ),
        (
            ConvCase(
                geometry: geometry(c: 16, h: 20, w: 20, m: 24, k: (3, 3), pads: (1, 1, 1, 1)), residual: true,
                activation: .clip(min: -1, max: 1)), .winograd, .openBLAS
        ),
        (ConvCase(geometry: geometry(c: 24, h: 9, w: 9, m: 40, k: (1, 1)), activation: .relu), .gemm, .panels),
    ]

    /// The plan reads the stored floats in place and computes what the plan that packs the
    /// weights itself computes, bit for bit, at 1 and 2 threads; and one changed stored value
    /// changes the output (the kernels really read them).
    @Test(arguments: cases)
    func storedWeightsAreReadInPlace(
        _ c: ConvCase, _ layout: PrepackedWeights.Layout, _ format: PrepackedWeights.Format
    ) {
        var keep: [PrepackedWeightsTests.Storage] = []
        let packing = runConv(c, planWithWeights: true)
        #expect(!packing.plan.usesPrepackedWeights)
        for threads in [1, 2] {
            let stored = runConv(c, threads: threads, planWithWeights: true) { weights in
                let p = PrepackedWeightsTests.prepacked(c.geometry, weights, target: .avx2, keep: &keep)
                #expect(p?.layout == layout && p?.format == format, "\(c)")
                return p
            }
            #expect(stored.plan.usesPrepackedWeights, "\(c)")
            #expect(stored.plan.algorithm == packing.plan.algorithm)
            #expect(stored.fast == packing.fast, "\(c) at \(threads) threads")
        }
        let changed = runConv(c, planWithWeights: true) { weights in
            PrepackedWeightsTests.prepacked(c.geometry, weights, target: .avx2, keep: &keep) { values, _ in
                values[0] += 0.25
            }
        }
        #expect(changed.plan.usesPrepackedWeights)
        #expect(changed.fast != packing.fast, "\(c)")
    }

    /// Weights stored for AVX-512 are not read as OpenBLAS's layout, and stored weights one float
    /// short are not read at all: the plan packs the plain weights, with the same output.
    @Test func mismatchedStoredWeightsAreIgnored() {
        var keep: [PrepackedWeightsTests.Storage] = []
        for (c, layout, format) in Self.cases where format == .openBLAS {
            let packing = runConv(c, planWithWeights: true)
            let shortCount = runConv(c, planWithWeights: true) { weights in
                PrepackedWeightsTests.prepacked(c.geometry, weights, target: .avx2, keep: &keep).map {
                    PrepackedWeights(
                        layout: layout, format: .openBLAS, values: $0.values, count: $0.count - 1, owner: keep.last!)
                }
            }
            let wrongLayout = runConv(c, planWithWeights: true) { weights in
                PrepackedWeightsTests.prepacked(c.geometry, weights, target: .avx2, keep: &keep).map {
                    PrepackedWeights(
                        layout: layout == .gemm ? .winograd : .gemm, format: .openBLAS, values: $0.values,
                        count: $0.count, owner: keep.last!)
                }
            }
            for result in [shortCount, wrongLayout] {
                #expect(!result.plan.usesPrepackedWeights, "\(c)")
                #expect(result.fast == packing.fast, "\(c)")
            }
        }
    }
}
