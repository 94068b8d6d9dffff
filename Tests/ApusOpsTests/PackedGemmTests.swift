import CApusKernels
import Testing

@testable import ApusOps

/// The packed kernel (AVX-512, or AVX2 and FMA) against a scalar reference that sums each element's terms in ascending k
/// order with one fused multiply-add per term, exactly as the kernel promises: bitwise equal.
@Suite(.enabled(if: PackedGemm.isAvailable, "needs AVX-512 or AVX2 and FMA"))
struct PackedGemmTests {
    struct Shape: CustomStringConvertible, Sendable {
        var m: Int, n: Int, k: Int
        var firstRow = 0
        var rowCount: Int? = nil
        var description: String { "\(m)×\(n)×\(k) rows \(firstRow)..<\(firstRow + (rowCount ?? m - firstRow))" }
    }

    static let shapes: [Shape] = [
        Shape(m: 1, n: 1, k: 1), Shape(m: 7, n: 15, k: 3), Shape(m: 8, n: 16, k: 128), Shape(m: 9, n: 17, k: 129),
        Shape(m: 17, n: 31, k: 127), Shape(m: 24, n: 32, k: 256), Shape(m: 33, n: 33, k: 300),
        Shape(m: 64, n: 49, k: 576), Shape(m: 40, n: 100, k: 5), Shape(m: 3, n: 600, k: 20),
        Shape(m: 48, n: 49, k: 300, firstRow: 16, rowCount: 24), Shape(m: 20, n: 70, k: 130, firstRow: 8, rowCount: 12),
        Shape(m: 5, n: 0, k: 4), Shape(m: 6, n: 9, k: 0),
        // Column tails of one to four past whole 48-wide strips go down the rows; a single one
        // in the last strip's pass.
        Shape(m: 30, n: 51, k: 200), Shape(m: 9, n: 3, k: 129), Shape(m: 70, n: 98, k: 260),
        Shape(m: 56, n: 52, k: 40, firstRow: 24, rowCount: 29), Shape(m: 40, n: 144, k: 17),
        Shape(m: 21, n: 97, k: 300), Shape(m: 13, n: 145, k: 70, firstRow: 8, rowCount: 5), Shape(m: 64, n: 1, k: 9),
    ]

    /// A product split along K into two calls, the second continuing the first's sums
    /// (`accumulate`), gives the bits of one call.
    @Test(arguments: [17, 48, 49, 50, 97, 100])
    func accumulateContinuesTheSums(columns n: Int) {
        let (m, k, split) = (27, 300, 130)
        var random = TestRandom(seed: UInt64(n))
        let a = random.array(m * k)
        let b = random.array(k * n)
        var whole = [Float](repeating: 0, count: m * n)
        var parts = [Float](repeating: 0, count: m * n)
        let first = a.withUnsafeBufferPointer { ap in
            (0..<m).flatMap { Array(ap[($0 * k)..<($0 * k + split)]) }
        }
        let second = a.withUnsafeBufferPointer { ap in
            (0..<m).flatMap { Array(ap[($0 * k + split)..<($0 * k + k)]) }
        }
        let packed = a.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: m, columns: k, rowStride: k) }
        let packedFirst = first.withUnsafeBufferPointer {
            PackedMatrix($0.baseAddress!, rows: m, columns: split, rowStride: split)
        }
        let packedSecond = second.withUnsafeBufferPointer {
            PackedMatrix($0.baseAddress!, rows: m, columns: k - split, rowStride: k - split)
        }
        b.withUnsafeBufferPointer { bp in
            whole.withUnsafeMutableBufferPointer { cp in
                PackedGemm.multiply(
                    packed, firstRow: 0, rowCount: m, n: n, b: bp.baseAddress!, ldb: n, c: cp.baseAddress!, ldc: n)
            }
            parts.withUnsafeMutableBufferPointer { cp in
                PackedGemm.multiply(
                    packedFirst, firstRow: 0, rowCount: m, n: n, b: bp.baseAddress!, ldb: n, c: cp.baseAddress!,
                    ldc: n)
                PackedGemm.multiply(
                    packedSecond, firstRow: 0, rowCount: m, n: n, b: bp.baseAddress! + split * n, ldb: n,
                    c: cp.baseAddress!, ldc: n, accumulate: true)
            }
        }
        var (wholeMismatches, partsMismatches) = (0, 0)
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for kk in 0..<k { sum = sum.addingProduct(a[i * k + kk], b[kk * n + j]) }
                if whole[i * n + j].bitPattern != sum.bitPattern { wholeMismatches += 1 }
                if parts[i * n + j].bitPattern != sum.bitPattern { partsMismatches += 1 }
            }
        }
        #expect(wholeMismatches == 0, "one call: \(wholeMismatches) elements differ")
        #expect(partsMismatches == 0, "two calls: \(partsMismatches) elements differ")
    }

    /// A reduction range of a matrix packed whole (`reduction:`, AVX-512): each sum is the range's
    /// ascending chain of fused multiply-adds, bitwise, for ranges that start and end inside the
    /// kernel's 128-step blocks, span several or sit in one, on a row range too; and consecutive
    /// ranges continued with `accumulate` give the whole product's bits.
    @Test(
        .enabled(if: PackedGemm.hasAVX512, "needs AVX-512"),
        arguments: [(0, 300), (0, 130), (130, 300), (5, 120), (128, 256), (200, 201), (127, 129), (288, 300)])
    func reductionRangeSumsItsOwnChain(lower: Int, upper: Int) {
        let (m, n, k) = (27, 50, 300)
        var random = TestRandom(seed: UInt64(lower * 1000 + upper))
        let a = random.array(m * k)
        let b = random.array(k * n)
        let packed = a.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: m, columns: k, rowStride: k) }
        var range = [Float](repeating: 0, count: m * n)
        var rows = [Float](repeating: 0, count: m * n)
        var chained = [Float](repeating: 0, count: m * n)
        b.withUnsafeBufferPointer { bp in
            let b = bp.baseAddress!
            range.withUnsafeMutableBufferPointer { cp in
                PackedGemm.multiply(
                    packed, firstRow: 0, rowCount: m, n: n, b: b + lower * n, ldb: n, c: cp.baseAddress!, ldc: n,
                    reduction: lower..<upper)
            }
            rows.withUnsafeMutableBufferPointer { cp in
                PackedGemm.multiply(
                    packed, firstRow: 8, rowCount: 13, n: n, b: b + lower * n, ldb: n, c: cp.baseAddress! + 8 * n,
                    ldc: n, reduction: lower..<upper)
            }
            chained.withUnsafeMutableBufferPointer { cp in
                for (index, part) in [0..<lower, lower..<upper, upper..<k].enumerated() {
                    PackedGemm.multiply(
                        packed, firstRow: 0, rowCount: m, n: n, b: b + part.lowerBound * n, ldb: n,
                        c: cp.baseAddress!, ldc: n, accumulate: index > 0, reduction: part)
                }
            }
        }
        var (rangeMismatches, rowMismatches, chainMismatches) = (0, 0, 0)
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for kk in lower..<upper { sum = sum.addingProduct(a[i * k + kk], b[kk * n + j]) }
                if range[i * n + j].bitPattern != sum.bitPattern { rangeMismatches += 1 }
                if (8..<21).contains(i) && rows[i * n + j].bitPattern != sum.bitPattern { rowMismatches += 1 }
                var whole: Float = 0
                for kk in 0..<k { whole = whole.addingProduct(a[i * k + kk], b[kk * n + j]) }
                if chained[i * n + j].bitPattern != whole.bitPattern { chainMismatches += 1 }
            }
        }
        #expect(rangeMismatches == 0, "range \(lower)..<\(upper): \(rangeMismatches) elements differ")
        #expect(rowMismatches == 0, "rows 8..<21: \(rowMismatches) elements differ")
        #expect(chainMismatches == 0, "three ranges accumulated: \(chainMismatches) elements differ")
    }

    @Test(arguments: shapes)
    func bitwiseEqualToOrderedFusedSums(_ s: Shape) {
        checkOrderedFusedSums(s, avx2: false)
    }

    /// The AVX2 kernel called directly, so that it is tested on AVX-512 machines too (where
    /// ``PackedGemm/multiply(_:matrix:firstRow:rowCount:n:b:ldb:c:ldc:bias:residual:residualStride:activation:accumulate:values:)``
    /// takes the AVX-512 one): the same bits.
    @Test(.enabled(if: PackedGemm.hasAVX2), arguments: shapes)
    func avx2KernelBitwiseEqualToOrderedFusedSums(_ s: Shape) {
        checkOrderedFusedSums(s, avx2: true)
    }

    func checkOrderedFusedSums(_ s: Shape, avx2: Bool) {
        var random = TestRandom(seed: UInt64(s.m * 1000 + s.n * 10 + s.k))
        let lda = s.k + 3
        let ldb = s.n + 5
        let ldc = s.n + 2
        let a = random.array(s.m * lda)
        let b = random.array(max(1, s.k * ldb))
        let rows = s.rowCount ?? s.m - s.firstRow
        var c = [Float](repeating: .nan, count: max(1, rows * ldc))
        let packed = a.withUnsafeBufferPointer {
            PackedMatrix($0.baseAddress!, rows: s.m, columns: s.k, rowStride: lda)
        }
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                if avx2 {
                    apus_gemm_packed_avx2(
                        packed.values, packed.rows, s.firstRow, packed.columns, rows, s.n, bp.baseAddress!, ldb,
                        cp.baseAddress!, ldc, 0, nil)
                } else {
                    PackedGemm.multiply(
                        packed, firstRow: s.firstRow, rowCount: rows, n: s.n, b: bp.baseAddress!, ldb: ldb,
                        c: cp.baseAddress!, ldc: ldc)
                }
            }
        }
        var mismatches = 0
        for i in 0..<rows {
            for j in 0..<s.n {
                var sum: Float = 0
                for kk in 0..<s.k { sum = sum.addingProduct(a[(s.firstRow + i) * lda + kk], b[kk * ldb + j]) }
                if sum.bitPattern != c[i * ldc + j].bitPattern { mismatches += 1 }
            }
            // Columns past n are never written.
            for j in s.n..<ldc where c.count > i * ldc + j {
                if !c[i * ldc + j].isNaN { mismatches += 1 }
            }
        }
        #expect(mismatches == 0, "\(s): \(mismatches) elements differ")
    }
}

/// The fused epilogue: bias, residual and activation applied in the kernel give exactly the sum,
/// then `+ bias`, then `+ residual`, then the activation, as the scalar formulas do.
@Suite(.enabled(if: PackedGemm.isAvailable, "needs AVX-512 or AVX2 and FMA"))
struct PackedGemmEpilogueTests {
    static let activations: [FusedActivation] = [.none, .relu, .clip(min: -0.5, max: 0.25), .silu, .sigmoid]

    @Test(arguments: activations, [45, 49, 50, 97])
    func matchesScalarEpilogue(_ activation: FusedActivation, columns n: Int) {
        let (m, k) = (19, 140)
        var random = TestRandom(seed: 7)
        let a = random.array(m * k)
        let b = random.array(k * n)
        let bias = random.array(m)
        var residual = random.array(m * n)
        // NaN must pass through every activation.
        residual[5] = .nan
        residual[m * n - 1] = .nan
        var c = [Float](repeating: 0, count: m * n)
        let packed = a.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: m, columns: k, rowStride: k) }
        b.withUnsafeBufferPointer { bp in
            bias.withUnsafeBufferPointer { biasPointer in
                residual.withUnsafeBufferPointer { rp in
                    c.withUnsafeMutableBufferPointer { cp in
                        PackedGemm.multiply(
                            packed, firstRow: 0, rowCount: m, n: n, b: bp.baseAddress!, ldb: n, c: cp.baseAddress!,
                            ldc: n, bias: biasPointer.baseAddress, residual: rp.baseAddress, residualStride: n,
                            activation: activation)
                    }
                }
            }
        }
        var worst: Float = 0
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for kk in 0..<k { sum = sum.addingProduct(a[i * k + kk], b[kk * n + j]) }
                let expected = activation.apply(sum + bias[i] + residual[i * n + j])
                let actual = c[i * n + j]
                if expected.isNaN || actual.isNaN {
                    #expect(expected.isNaN && actual.isNaN, "row \(i) column \(j): \(actual) vs \(expected)")
                    continue
                }
                if activation == .silu || activation == .sigmoid {
                    worst = max(worst, abs(actual - expected))
                } else {
                    #expect(actual.bitPattern == expected.bitPattern, "row \(i) column \(j): \(actual) vs \(expected)")
                }
            }
        }
        #expect(worst <= 1e-5, "\(activation) max error \(worst)")
    }
}

/// The AVX-512 sigmoid and SiLU against the scalar formulas with libm's exp, at every tail length
/// of a vector and at the edges of exp's range.
@Suite(.enabled(if: PackedGemm.hasAVX512, "needs AVX-512"))
struct LogisticKernelTests {
    @Test(arguments: [0, 1, 15, 16, 17, 37], [false, true])
    func matchesScalar(count: Int, silu: Bool) {
        var random = TestRandom(seed: UInt64(count) + (silu ? 100 : 0))
        var values = random.array(count).map { $0 * 30 }
        let specials: [Float] = [.nan, .infinity, -.infinity, 88.8, -88, 0, -0.0, 1e-30]
        for (index, special) in specials.enumerated() where index < count { values[(index * 7) % count] = special }
        var result = values
        result.withUnsafeMutableBufferPointer { PackedGemm.logistic($0.baseAddress!, count: count, silu: silu) }
        let activation: FusedActivation = silu ? .silu : .sigmoid
        for (x, y) in zip(values, result) {
            let expected = activation.apply(x)
            if expected.isNaN {
                #expect(y.isNaN, "\(activation)(\(x)) = \(y)")
            } else if expected.isInfinite {
                #expect(y == expected, "\(activation)(\(x)) = \(y)")
            } else {
                let tolerance = 4 * max(abs(expected), Float.leastNormalMagnitude).ulp + 1e-30
                #expect(abs(y - expected) <= tolerance, "\(activation)(\(x)) = \(y), expected \(expected)")
            }
        }
    }
}
