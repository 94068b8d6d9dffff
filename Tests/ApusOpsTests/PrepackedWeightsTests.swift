import Testing

@testable import ApusOps

/// Weights packed ahead of time (``Conv2DPlan/prepack(geometry:weights:threadCount:)``, as
/// `apus convert` stores them) and handed to a plan, which reads them in place.
@Suite(.enabled(if: PackedGemm.hasAVX512)) struct PrepackedWeightsTests {
    init() throws { try BLAS.load() }

    /// Packed floats in memory the test owns, as an artifact's mapping would hold them.
    final class Storage {
        let values: UnsafeMutablePointer<Float>
        let count: Int
        init(_ source: UnsafeBufferPointer<Float>) {
            count = source.count
            values = .allocate(capacity: max(1, count))
            values.update(from: source.baseAddress!, count: count)
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
        _ g: Conv2DGeometry, _ weights: UnsafePointer<Float>, keep: inout [Storage],
        change: (UnsafeMutablePointer<Float>, Int) -> Void = { _, _ in }
    ) -> PrepackedWeights? {
        guard let (layout, matrix) = Conv2DPlan.prepack(geometry: g, weights: weights) else { return nil }
        let storage = Storage(matrix.packedValues)
        change(storage.values, storage.count)
        keep.append(storage)
        return PrepackedWeights(layout: layout, values: storage.values, count: storage.count, owner: storage)
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
            for result in [wrongLayout, shortCount] {
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
            let packed = weights.withUnsafeBufferPointer { Conv2DPlan.prepack(geometry: g, weights: $0.baseAddress!) }
            #expect(packed == nil, "\(g)")
        }
    }

    /// The attribute names the layout and this build's panel format; another format is not read.
    @Test func attributeNamesLayoutAndFormat() {
        for layout in PrepackedWeights.Layout.allCases {
            #expect(PrepackedWeights.layout(fromAttribute: PrepackedWeights.attribute(layout)) == layout)
            #expect(PrepackedWeights.layout(fromAttribute: "\(layout.rawValue)/p16k256") == nil)
        }
        #expect(PrepackedWeights.attribute(.taps) == "taps/p8k128")
        for text in ["", "taps", "taps/", "/p8k128", "im2col/p8k128", "taps/p8k128/x"] {
            #expect(PrepackedWeights.layout(fromAttribute: text) == nil, "\(text)")
        }
    }
}
