import Testing

@testable import ApusOps

/// `U = G g Gᵀ` of every filter, the plain way: scalar Double sums starting from 0, `G` times the
/// filter, then that times `Gᵀ`, one rounding to Float; `U[ξ][pair]`.
private func referenceTransform(_ weights: [Float], pairs: Int) -> [Float] {
    let g: [Double] = [
        1.0 / 4, 0, 0, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
        1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0, 0, 1,
    ]
    var u = [Float](repeating: .nan, count: 36 * pairs)
    for pair in 0..<pairs {
        var t = [Double](repeating: 0, count: 18)
        for r in 0..<6 {
            for col in 0..<3 {
                var sum = 0.0
                for i in 0..<3 { sum += g[r * 3 + i] * Double(weights[pair * 9 + i * 3 + col]) }
                t[r * 3 + col] = sum
            }
        }
        for r in 0..<6 {
            for col in 0..<6 {
                var sum = 0.0
                for i in 0..<3 { sum += t[r * 3 + i] * g[col * 3 + i] }
                u[(r * 6 + col) * pairs + pair] = Float(sum)
            }
        }
    }
    return u
}

/// Weights with the values that tell operation orders apart: signed zeros, infinities, NaN,
/// subnormals, huge and tiny magnitudes, and random ones.
private func awkwardWeights(_ count: Int, seed: UInt64) -> [Float] {
    var generator = SplitMix(seed: seed)
    let special: [Float] = [
        0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, -.leastNormalMagnitude, .greatestFiniteMagnitude,
        -3e38, 1e-30, 1,
    ]
    return (0..<count).map { _ in
        let pick = generator.next() % 8
        if pick == 0 { return special[Int(generator.next() % UInt64(special.count))] }
        // Zero filters often: their +0 / −0 results depend on the order of the additions.
        if pick == 1 { return generator.next() % 2 == 0 ? 0 : -0.0 }
        return Float(Int64(generator.next() % 2_000_001) - 1_000_000) / 1e5
    }
}

private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The bits of every value, NaNs as one pattern: which NaN a sum of two NaNs (or a product of 0
/// and ∞) keeps is up to the compiler, which may swap the operands of an addition; every other
/// value, signed zeros included, must match bit for bit.
private func bits(_ values: [Float]) -> [UInt32] { values.map { $0.isNaN ? 0x7FC0_0000 : $0.bitPattern } }

@Suite struct WinogradWeightsTests {
    /// The vectorized transform, eight filters per vector, gives the scalar formula's bits, for
    /// pair counts around the vector width and a prime, whole or in two ranges.
    @Test(arguments: [(1, 1), (1, 7), (2, 4), (3, 3), (1, 9), (5, 13), (8, 16)])
    func transformIsBitwiseTheScalarFormula(_ channels: (k: Int, c: Int)) {
        let pairs = channels.k * channels.c
        let weights = awkwardWeights(pairs * 9, seed: UInt64(pairs))
        let expected = bits(referenceTransform(weights, pairs: pairs))
        var whole = [Float](repeating: 1, count: 36 * pairs)
        var split = [Float](repeating: 1, count: 36 * pairs)
        weights.withUnsafeBufferPointer { w in
            whole.withUnsafeMutableBufferPointer { u in
                WinogradConv2D.transformWeights(
                    w.baseAddress!, outputChannels: channels.k, inputChannels: channels.c, into: u.baseAddress!)
            }
            split.withUnsafeMutableBufferPointer { u in
                let middle = pairs / 2 + 1
                for range in [middle..<pairs, 0..<middle] {
                    WinogradConv2D.transformWeights(
                        w.baseAddress!, outputChannels: channels.k, inputChannels: channels.c, into: u.baseAddress!,
                        pairs: range)
                }
            }
        }
        #expect(bits(whole) == expected)
        #expect(bits(split) == expected)
        // The threaded form used by plans on machines without AVX-512.
        let g = geometry(c: channels.c, h: 8, w: 8, m: channels.k, k: (3, 3), pads: (1, 1, 1, 1))
        let threaded = weights.withUnsafeBufferPointer {
            WinogradWeights(weights: $0.baseAddress!, geometry: g, threadCount: 2)
        }
        #expect(bits(Array(UnsafeBufferPointer(start: threaded.values, count: threaded.count))) == expected)
    }

    /// Transforming straight into the kernel's packed layout gives the bytes of packing the
    /// scalar formula's matrices: rows past K zero, columns across the 128-column blocks, on one
    /// and two threads.
    @Test(
        .enabled(if: PackedGemm.hasAVX512, "needs AVX-512"),
        arguments: [(1, 3), (8, 1), (13, 5), (24, 130), (40, 257)],
        [1, 2])
    func packedTransformIsThePackedScalarFormula(_ channels: (k: Int, c: Int), threads: Int) throws {
        let pairs = channels.k * channels.c
        let weights = awkwardWeights(pairs * 9, seed: UInt64(pairs) &+ 7)
        let reference = referenceTransform(weights, pairs: pairs)
        let expected = reference.withUnsafeBufferPointer {
            PackedMatrix(
                $0.baseAddress!, rows: channels.k, columns: channels.c, rowStride: channels.c, matrixCount: 36,
                matrixStride: pairs)
        }
        let g = geometry(c: channels.c, h: 8, w: 8, m: channels.k, k: (3, 3), pads: (1, 1, 1, 1))
        let packed = weights.withUnsafeBufferPointer {
            WinogradWeights.packed(weights: $0.baseAddress!, geometry: g, threadCount: threads)
        }
        let count = expected.stride * 36
        #expect(packed.stride == expected.stride)
        #expect(
            bits(Array(UnsafeBufferPointer(start: packed.values, count: count)))
                == bits(Array(UnsafeBufferPointer(start: expected.values, count: count))))
    }

    /// Packing on two threads (ranges of panels) gives the bytes of packing on one, and every
    /// value lands where ``PackedMatrix/offset(panel:column:)`` says.
    @Test(arguments: [(5, 3), (480, 300), (1000, 129), (17, 2000)])
    func parallelPackingIsBitwiseTheSerialOne(_ size: (rows: Int, columns: Int)) throws {
        let a = (0..<(size.rows * size.columns)).map { Float($0 % 9973) + 0.5 }
        let one = a.withUnsafeBufferPointer {
            PackedMatrix($0.baseAddress!, rows: size.rows, columns: size.columns, rowStride: size.columns)
        }
        let two = a.withUnsafeBufferPointer {
            PackedMatrix(
                $0.baseAddress!, rows: size.rows, columns: size.columns, rowStride: size.columns, threadCount: 2)
        }
        #expect(
            bits(Array(UnsafeBufferPointer(start: one.values, count: one.stride)))
                == bits(Array(UnsafeBufferPointer(start: two.values, count: two.stride))))
        var misplaced = 0
        for row in 0..<size.rows {
            for column in 0..<size.columns {
                let at = two.offset(panel: row / 8, column: column) + row % 8
                if two.values[at] != a[row * size.columns + column] { misplaced += 1 }
            }
        }
        #expect(misplaced == 0)
    }
}
