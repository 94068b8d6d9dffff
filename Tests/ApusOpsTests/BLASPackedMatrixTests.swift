import CApusKernels
import Testing

@testable import ApusOps

/// OpenBLAS's kernel on weights packed once (``BLASPackedMatrix``) against a product summed in
/// double precision, whole and in split calls.
@Suite(.enabled(if: BLASPackedMatrix.isAvailable, "needs OpenBLAS's Haswell, Zen or SkylakeX kernels"))
struct BLASPackedMatrixTests {
    struct Shape: CustomStringConvertible, Sendable {
        var rows: Int, k: Int, n: Int
        var description: String { "\(rows)×\(n)×\(k)" }
    }

    /// Row remainders of one to three past whole panels of four, reductions over one and several
    /// blocks of 384, column counts over one and several blocks of 256.
    static let shapes: [Shape] = [
        Shape(rows: 1, k: 1, n: 1), Shape(rows: 3, k: 5, n: 7), Shape(rows: 4, k: 384, n: 16),
        Shape(rows: 9, k: 385, n: 17), Shape(rows: 22, k: 800, n: 49), Shape(rows: 64, k: 64, n: 257),
        Shape(rows: 18, k: 147, n: 600), Shape(rows: 48, k: 1152, n: 30), Shape(rows: 7, k: 20, n: 513),
    ]

    /// `W · B` with each sum in double precision, and the sum of the terms' magnitudes.
    static func reference(_ w: [Float], _ b: [Float], _ s: Shape) -> (sums: [Double], magnitudes: [Double]) {
        var sums = [Double](repeating: 0, count: s.rows * s.n)
        var magnitudes = sums
        for row in 0..<s.rows {
            for l in 0..<s.k {
                let weight = Double(w[row * s.k + l])
                for column in 0..<s.n {
                    let term = weight * Double(b[l * s.n + column])
                    sums[row * s.n + column] += term
                    magnitudes[row * s.n + column] += abs(term)
                }
            }
        }
        return (sums, magnitudes)
    }

    /// Rows `rows` of the product, computed in the calls `rowRanges` × `columnRanges`.
    static func product(
        _ packed: BLASPackedMatrix, _ b: [Float], _ s: Shape, rowRanges: [Range<Int>], columnRanges: [Range<Int>]
    ) -> [Float] {
        var c = [Float](repeating: .nan, count: s.rows * s.n)
        b.withUnsafeBufferPointer { b in
            c.withUnsafeMutableBufferPointer { c in
                for rows in rowRanges {
                    for columns in columnRanges {
                        packed.multiply(
                            firstRow: rows.lowerBound, rowCount: rows.count, n: columns.count,
                            b: b.baseAddress! + columns.lowerBound, ldb: s.n,
                            c: c.baseAddress! + rows.lowerBound * s.n + columns.lowerBound, ldc: s.n)
                    }
                }
            }
        }
        return c
    }

    static func pack(_ w: [Float], _ s: Shape, threadCount: Int = 1) -> BLASPackedMatrix? {
        w.withUnsafeBufferPointer {
            BLASPackedMatrix($0.baseAddress!, rows: s.rows, columns: s.k, rowStride: s.k, threadCount: threadCount)
        }
    }

    /// Every element within a few ulp of the terms' magnitude times √k of the double-precision sum.
    static func expectNearSums(_ c: [Float], _ w: [Float], _ b: [Float], _ s: Shape, _ label: String) {
        let (sums, magnitudes) = reference(w, b, s)
        var worst = 0.0
        for i in 0..<c.count {
            let allowed = 1e-6 * (Double(s.k).squareRoot() + 1) * magnitudes[i] + 1e-7
            worst = max(worst, abs(Double(c[i]) - sums[i]) / allowed)
        }
        #expect(worst <= 1, "\(label) \(s): worst error \(worst) of the allowed")
    }

    @Test(arguments: shapes)
    func matchesTheProductInDoublePrecision(_ s: Shape) throws {
        var random = TestRandom(seed: UInt64(s.rows * 1000 + s.k))
        let w = random.array(s.rows * s.k)
        let b = random.array(s.k * s.n)
        let packed = try #require(Self.pack(w, s))
        let c = Self.product(packed, b, s, rowRanges: [0..<s.rows], columnRanges: [0..<s.n])
        Self.expectNearSums(c, w, b, s, "one call")
    }

    /// Calls over row ranges of whole panels and column ranges of any width fill in the product
    /// (OpenBLAS's edge kernels round differently from its main one, so the bits depend on the
    /// calls' shapes, which is why convolution tiles never depend on the thread count); the same
    /// calls give the same bits again, and weights packed on two threads the bits of one.
    @Test func splitCallsAndThreads() throws {
        let s = Shape(rows: 30, k: 500, n: 300)
        var random = TestRandom(seed: 7)
        let w = random.array(s.rows * s.k)
        let b = random.array(s.k * s.n)
        let packed = try #require(Self.pack(w, s))
        let rows = [0..<8, 8..<20, 20..<28, 28..<30]
        let columns = [0..<1, 1..<49, 49..<300]
        let split = Self.product(packed, b, s, rowRanges: rows, columnRanges: columns)
        Self.expectNearSums(split, w, b, s, "split calls")
        #expect(split == Self.product(packed, b, s, rowRanges: rows, columnRanges: columns))
        let twoThreads = try #require(Self.pack(w, s, threadCount: 2))
        #expect(split == Self.product(twoThreads, b, s, rowRanges: rows, columnRanges: columns))
    }

    /// Without the packed AVX kernels, an ungrouped pointwise layer runs on these weights, and
    /// matches OpenBLAS's `cblas_sgemm` on the plain weights plus the epilogue.
    @Test(.enabled(if: !PackedGemm.hasAVX512)) func pointwiseConvolutionUsesIt() {
        let g = Conv2DGeometry(
            batch: 1, inputChannels: 40, inputHeight: 7, inputWidth: 7, outputChannels: 52, kernelHeight: 1,
            kernelWidth: 1)
        var random = TestRandom(seed: 11)
        let weights = random.array(52 * 40)
        let bias = random.array(52)
        let input = random.array(40 * 49)
        let plan = weights.withUnsafeBufferPointer { Conv2DPlan(geometry: g, weights: $0.baseAddress!) }
        #expect(plan.blasPackedWeights != nil)
        #expect(plan.readsOwnWeights)
        var output = [Float](repeating: .nan, count: 52 * 49)
        var expected = [Float](repeating: .nan, count: 52 * 49)
        weights.withUnsafeBufferPointer { w in
            input.withUnsafeBufferPointer { x in
                bias.withUnsafeBufferPointer { bias in
                    output.withUnsafeMutableBufferPointer { y in
                        plan.run(
                            input: x.baseAddress!, weights: w.baseAddress!, bias: bias.baseAddress!, residual: nil,
                            output: y.baseAddress!, activation: .relu, context: ComputeContext(threadCount: 2))
                    }
                    expected.withUnsafeMutableBufferPointer { y in
                        BLAS.sgemm(
                            transposeA: false, transposeB: false, m: 52, n: 49, k: 40, alpha: 1, a: w.baseAddress!,
                            lda: 40, b: x.baseAddress!, ldb: 49, beta: 0, c: y.baseAddress!, ldc: 49)
                    }
                }
            }
        }
        for row in 0..<52 {
            for column in 0..<49 { expected[row * 49 + column] = max(0, expected[row * 49 + column] + bias[row]) }
        }
        expectClose(output, expected, reduction: 40, "pointwise 52 × 49 × 40")
    }

    /// Without AVX-512, a Winograd layer's 36 products run on these weights, at 1 and 2 threads
    /// with the same bits, within the reference's tolerance.
    @Test(.enabled(if: !PackedGemm.hasAVX512)) func winogradUsesIt() {
        let g = Conv2DGeometry(
            batch: 2, inputChannels: 20, inputHeight: 18, inputWidth: 17, outputChannels: 12, kernelHeight: 3,
            kernelWidth: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        let c = ConvCase(geometry: g, residual: true, activation: .relu)
        let one = runConv(c, threads: 1, planWithWeights: true)
        let two = runConv(c, threads: 2, planWithWeights: true)
        #expect(one.plan.algorithm == .winograd)
        #expect(one.plan.blasPackedWeights != nil)
        #expect(one.fast == two.fast)
        expectClose(one.fast, one.reference, reduction: g.reductionLength, "\(c)")
    }

    /// The Winograd weights transformed and packed a block of output channels at a time, or
    /// copied out of the AVX-512 kernel's panels, hold the floats of the whole transform packed
    /// at once: every position's product is the same, bit for bit.
    @Test func winogradBlocksPackTheWholeTransform() throws {
        let g = Conv2DGeometry(
            batch: 1, inputChannels: 1000, inputHeight: 8, inputWidth: 8, outputChannels: 12, kernelHeight: 3,
            kernelWidth: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        var random = TestRandom(seed: 3)
        let weights = random.array(12 * 1000 * 9)
        let b = random.array(1000 * 5)
        let (blocks, fromPanels, whole) = try weights.withUnsafeBufferPointer { w in
            let transformed = WinogradWeights(weights: w.baseAddress!, geometry: g)
            let panels = WinogradWeights.packed(weights: w.baseAddress!, geometry: g)
            return (
                try #require(WinogradWeights.blasPacked(weights: w.baseAddress!, geometry: g, threadCount: 2)),
                try #require(WinogradWeights.blasPacked(weights: w.baseAddress!, geometry: g, transformed: panels)),
                try #require(
                    BLASPackedMatrix(
                        transformed.values, rows: WinogradConv2D.positions * 12, columns: 1000, rowStride: 1000))
            )
        }
        let s = Shape(rows: WinogradConv2D.positions * 12, k: 1000, n: 5)
        let positions = (0..<WinogradConv2D.positions).map { $0 * 12..<($0 + 1) * 12 }
        let expected = Self.product(whole, b, s, rowRanges: positions, columnRanges: [0..<5])
        #expect(Self.product(blocks, b, s, rowRanges: positions, columnRanges: [0..<5]) == expected)
        #expect(Self.product(fromPanels, b, s, rowRanges: positions, columnRanges: [0..<5]) == expected)
    }

    /// The layout `apus convert --prepack-for avx2` writes without OpenBLAS is, float for float,
    /// what OpenBLAS's own copy routine for the loaded core packs: every row remainder, one and
    /// several reduction blocks, a row stride wider than the rows.
    @Test func writtenLayoutIsOpenBLASsCopy() {
        #expect(BLASPackedMatrix.readsStoredLayout)
        for rows in 1...13 {
            for k in [1, 7, 383, 384, 385, 1000] {
                var random = TestRandom(seed: UInt64(rows * 7919 + k))
                let stride = k + 3
                let w = random.array(rows * stride)
                var written = [Float](repeating: .nan, count: rows * k)
                w.withUnsafeBufferPointer { w in
                    written.withUnsafeMutableBufferPointer {
                        BLASPackedMatrix.write(
                            w.baseAddress!, rows: rows, columns: k, rowStride: stride, into: $0.baseAddress!)
                    }
                }
                let copied = w.withUnsafeBufferPointer {
                    BLASPackedMatrix($0.baseAddress!, rows: rows, columns: k, rowStride: stride)
                }
                guard let copied else {
                    Issue.record("no packed matrix")
                    return
                }
                let same =
                    written.map(\.bitPattern)
                    == UnsafeBufferPointer(start: copied.values, count: rows * k).map(\.bitPattern)
                #expect(same, "\(rows) rows, k \(k)")
            }
        }
    }
}
