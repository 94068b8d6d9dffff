import Testing

#if canImport(Glibc)
    import Glibc
#endif

import CApusKernels

@testable import ApusOps

@Suite struct ConvEpilogueTests {
    static let activations: [FusedActivation] = [
        .none, .relu, .clip(min: -0.25, max: 0.5), .sigmoid, .hardSigmoid(alpha: 0.2, beta: 0.5), .hardSwish,
        .leakyRelu(alpha: 0.1), .silu,
    ]

    @Test func parsesNames() {
        #expect(FusedActivation(name: "", parameters: []) == FusedActivation.none)
        #expect(FusedActivation(name: "Relu", parameters: []) == .relu)
        #expect(FusedActivation(name: "Clip", parameters: [0, 6]) == .clip(min: 0, max: 6))
        #expect(FusedActivation(name: "HardSigmoid", parameters: []) == .hardSigmoid(alpha: 0.2, beta: 0.5))
        #expect(FusedActivation(name: "LeakyRelu", parameters: []) == .leakyRelu(alpha: 0.01))
        #expect(FusedActivation(name: "HardSwish", parameters: []) == .hardSwish)
        #expect(FusedActivation(name: "SiLU", parameters: []) == .silu)
        #expect(FusedActivation(name: "Gelu", parameters: []) == nil)
        #expect(FusedActivation(name: "Relu", parameters: [1]) == nil)
    }

    /// Expected values computed with the venv's torch (F.hardswish, torch.sigmoid) and by hand
    /// from ONNX's HardSigmoid formula with its default alpha 0.2, beta 0.5.
    @Test func scalarFormulas() {
        let xs: [Float] = [-4, -3, -1, 0, 1, 2.5, 3, 4]
        // torch.nn.functional.hardswish(torch.tensor(xs))
        let hardSwish: [Float] = [-0.0, -0.0, -0.33333334, 0.0, 0.6666667, 2.2916667, 3.0, 4.0]
        for (x, e) in zip(xs, hardSwish) { #expect(abs(FusedActivation.hardSwish.apply(x) - e) < 1e-6) }
        // numpy: np.clip(0.2 * x + 0.5, 0, 1)
        let hardSigmoid: [Float] = [0, 0, 0.3, 0.5, 0.7, 1, 1, 1]
        for (x, e) in zip(xs, hardSigmoid) {
            #expect(abs(FusedActivation.hardSigmoid(alpha: 0.2, beta: 0.5).apply(x) - e) < 1e-6)
        }
        #expect(abs(FusedActivation.sigmoid.apply(1) - 0.7310586) < 1e-6)
        #expect(FusedActivation.leakyRelu(alpha: 0.1).apply(-2) == -0.2)
        #expect(FusedActivation.relu.apply(.nan).isNaN)
        // torch.nn.functional.silu(torch.tensor([-4, -1, 0, 1, 2.5, 20.0]))
        let siluX: [Float] = [-4, -1, 0, 1, 2.5, 20]
        let silu: [Float] = [-0.07194484, -0.26894143, 0, 0.7310586, 2.3103545, 20]
        for (x, e) in zip(siluX, silu) {
            #expect(abs(FusedActivation.silu.apply(x) - e) <= 1e-6 * max(1, abs(e)))
            let lanes = FusedActivation.silu.apply(SIMD16<Float>(repeating: x))
            #expect(abs(lanes[3] - e) <= 1e-6 * max(1, abs(e)))
        }
    }

    /// The vector exponential against `expf` over the whole float range that does not overflow,
    /// and at the edges: clamped extremes, infinities and NaN.
    @Test func vectorExpMatchesLibrary() {
        var x: Float = -87
        var worst: Float = 0
        while x < 88.3 {
            var lanes = SIMD16<Float>()
            for lane in 0..<16 { lanes[lane] = x + Float(lane) * 0.0137 }
            let result = VectorMath.exp(lanes)
            for lane in 0..<16 where lanes[lane] < 88.3 {
                let expected = expf(lanes[lane])
                worst = max(worst, abs(result[lane] - expected) / expected)
            }
            x += 0.2191
        }
        #expect(worst <= 4 * Float.ulpOfOne, "worst relative error \(worst)")
        var edges = SIMD16<Float>(repeating: 0)
        edges[0] = .infinity
        edges[1] = -.infinity
        edges[2] = .nan
        edges[3] = -1000
        edges[4] = 1000
        let result = VectorMath.exp(edges)
        #expect(result[0] == .infinity)
        #expect(result[1] >= 0 && result[1] < 1e-37)
        #expect(result[2].isNaN)
        #expect(result[3] >= 0 && result[3] < 1e-37)
        #expect(result[4] == .infinity)
        #expect(result[5] == 1)
        #expect(VectorMath.sigmoid(edges)[1] == 0)
        #expect(VectorMath.silu(edges)[1].isNaN == FusedActivation.silu.apply(-.infinity).isNaN)
        #expect(VectorMath.sigmoid(edges)[0] == 1)
    }

    /// The SIMD path against the scalar reference on lengths 0, 1, 15, 16, 17 and 37.
    @Test(arguments: [0, 1, 15, 16, 17, 37])
    func simdMatchesScalar(_ count: Int) {
        var random = TestRandom(seed: UInt64(count) + 7)
        for activation in Self.activations {
            let values = random.array(count).map { $0 * 8 }
            var fast = values
            fast.withUnsafeMutableBufferPointer { activation.apply(to: $0.baseAddress!, count: count) }
            let expected = values.map { activation.apply($0) }
            for (a, e) in zip(fast, expected) { #expect(abs(a - e) <= 1e-6 * max(1, abs(e)), "\(activation)") }
        }
    }

    /// `block` after `fast` (given the block, the bias and the residual, both possibly `nil`) and
    /// after ``Epilogue/applyReference(to:rowCount:columnCount:rowStride:bias:residual:residualRowStride:activation:)``,
    /// for `rows` rows of `columns` values `columns + 5` apart and a residual `columns + 2` apart.
    static func epilogues(
        block: [Float], rows: Int, columns: Int, bias: [Float]?, residual: [Float]?, activation: FusedActivation,
        fast: (UnsafeMutablePointer<Float>, UnsafePointer<Float>?, UnsafePointer<Float>?) -> Void
    ) -> (fast: [Float], reference: [Float]) {
        var fastBlock = block
        var reference = block
        let bias = bias ?? []
        let residual = residual ?? []
        bias.withUnsafeBufferPointer { b in
            residual.withUnsafeBufferPointer { r in
                let bp = b.isEmpty ? nil : b.baseAddress
                let rp = r.isEmpty ? nil : r.baseAddress
                fastBlock.withUnsafeMutableBufferPointer { fast($0.baseAddress!, bp, rp) }
                reference.withUnsafeMutableBufferPointer {
                    Epilogue.applyReference(
                        to: $0.baseAddress!, rowCount: rows, columnCount: columns, rowStride: columns + 5, bias: bp,
                        residual: rp, residualRowStride: columns + 2, activation: activation)
                }
            }
        }
        return (fastBlock, reference)
    }

    @Test(arguments: [0, 1, 15, 16, 17, 37])
    func blockEpilogueMatchesReference(_ columns: Int) {
        var random = TestRandom(seed: UInt64(columns) + 11)
        let rows = 3
        for activation in Self.activations {
            for useResidual in [false, true] {
                let block = random.array(rows * (columns + 5))
                let bias = random.array(rows)
                let residual = random.array(rows * (columns + 2))
                let (fast, reference) = Self.epilogues(
                    block: block, rows: rows, columns: columns, bias: bias, residual: useResidual ? residual : nil,
                    activation: activation
                ) { block, bias, residual in
                    Epilogue.apply(
                        to: block, rowCount: rows, columnCount: columns, rowStride: columns + 5, bias: bias,
                        residual: residual, residualRowStride: columns + 2, activation: activation)
                }
                for (a, e) in zip(fast, reference) { #expect(abs(a - e) <= 1e-6 * max(1, abs(e)), "\(activation)") }
            }
        }
    }

    /// The AVX2 epilogue kernel (what ``Epilogue`` runs on CPUs with AVX2 but not AVX-512) against
    /// the scalar reference, called directly so that AVX-512 machines test it too: every
    /// activation it has, with and without bias and residual, NaN, ±0 and ±∞ among the values.
    @Test(.enabled(if: PackedGemm.cpuHasAVX2, "needs AVX2"), arguments: [1, 7, 8, 9, 37])
    func avx2EpilogueMatchesReference(_ columns: Int) {
        var random = TestRandom(seed: UInt64(columns) + 23)
        let rows = 3
        for activation in Self.activations {
            let (code, low, high, rest) = PackedGemm.kernelActivation(activation)
            if rest != .none { continue }
            for (useBias, useResidual) in [(false, false), (true, false), (false, true), (true, true)] {
                var block = random.array(rows * (columns + 5)).map { $0 * 8 }
                block[0] = .nan
                block[columns + 4] = -0.0
                if columns > 2 { block[1] = .infinity; block[2] = -.infinity }
                let bias = random.array(rows)
                let residual = random.array(rows * (columns + 2))
                let (fast, reference) = Self.epilogues(
                    block: block, rows: rows, columns: columns, bias: useBias ? bias : nil,
                    residual: useResidual ? residual : nil, activation: activation
                ) { block, bias, residual in
                    apus_epilogue_avx2(block, rows, columns, columns + 5, bias, residual, columns + 2, code, low, high)
                }
                for (index, (a, e)) in zip(fast, reference).enumerated() {
                    let same = a.isNaN ? e.isNaN : (a == e && a.sign == e.sign) || abs(a - e) <= 1e-6 * max(1, abs(e))
                    #expect(same, "\(activation), bias \(useBias), residual \(useResidual), [\(index)]: \(a) vs \(e)")
                }
            }
        }
    }
}
