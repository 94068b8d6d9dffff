import ApusTensor
import Testing

@testable import ApusOps

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Lengths around the SIMD width (16) plus a prime, as STYLE.md asks.
let kernelLengths = [0, 1, 15, 16, 17, 97]

/// Deterministic pseudo-random floats in [low, high).
func pseudoRandomFloats(_ count: Int, seed: UInt64, low: Float = -4, high: Float = 4) -> [Float] {
    var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return low + (high - low) * Float(state >> 40) / Float(1 << 24)
    }
}

/// Whether two floats agree within `ulps` units in the last place (NaN matches NaN).
func closeInUlps(_ a: Float, _ b: Float, _ ulps: Float) -> Bool {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
    if a == b { return true }
    return abs(a - b) <= ulps * max(a.ulp, b.ulp)
}

func expectClose(
    _ actual: [Float], _ expected: [Float], ulps: Float = 0, absolute: Float = 0,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.count == expected.count, sourceLocation: sourceLocation)
    for (index, (a, e)) in zip(actual, expected).enumerated()
    where !(closeInUlps(a, e, ulps) || abs(a - e) <= absolute) {
        Issue.record("element \(index): \(a) vs expected \(e)", sourceLocation: sourceLocation)
        return
    }
}

func runBinary(
    _ operation: BinaryFloatOperation, _ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int],
    threads: Int = 1
) -> (fast: [Float], reference: [Float]) {
    guard let layout = BroadcastLayout(operandDimensions: [aShape, bShape]) else { return ([], []) }
    var fast = [Float](repeating: .nan, count: layout.elementCount)
    var reference = fast
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            guard let pa = a.baseAddress, let pb = b.baseAddress else { return }
            fast.withUnsafeMutableBufferPointer { output in
                guard let out = output.baseAddress else { return }
                binaryFloat32(
                    operation, pa, pb, output: out, layout: layout, context: ComputeContext(threadCount: threads))
            }
            reference.withUnsafeMutableBufferPointer { output in
                guard let out = output.baseAddress else { return }
                binaryFloat32Reference(operation, pa, aDimensions: aShape, pb, bDimensions: bShape, output: out)
            }
        }
    }
    return (fast, reference)
}

@Suite struct ElementwiseKernelTests {
    @Test(arguments: BinaryFloatOperation.allCases)
    func sameShapeAndScalarOperandsMatchReference(operation: BinaryFloatOperation) {
        for length in kernelLengths {
            let a = pseudoRandomFloats(max(length, 1), seed: 1, low: 0.1)
            let b = pseudoRandomFloats(max(length, 1), seed: 2, low: 0.1)
            for (aShape, bShape) in [([length], [length]), ([length], []), ([], [length]), ([length], [1])] {
                let aCount = aShape.reduce(1, *)
                let bCount = bShape.reduce(1, *)
                let (fast, reference) = runBinary(
                    operation, Array(a.prefix(aCount)), aShape, Array(b.prefix(bCount)), bShape)
                #expect(fast.count == (length == 0 ? 0 : max(aCount, bCount)))
                // Both paths apply the same scalar function, so the results are bitwise equal.
                #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern), "\(operation) \(aShape) \(bShape)")
            }
        }
    }

    @Test func broadcastPatternsMatchReference() {
        let cases: [([Int], [Int])] = [
            ([2, 3, 4, 5], [3, 1, 1]), ([2, 3, 4, 5], [1, 3, 1, 1]), ([2, 1, 3], [4, 1]), ([], []),
            ([3, 1], [1, 17]), ([2, 3, 17], [2, 1, 17]), ([5, 0, 3], [3]), ([1, 1, 1], [2, 1, 3]),
        ]
        for (aShape, bShape) in cases {
            let a = pseudoRandomFloats(aShape.reduce(1, *), seed: 3)
            let b = pseudoRandomFloats(bShape.reduce(1, *), seed: 4)
            for operation in BinaryFloatOperation.allCases where operation != .power {
                let (fast, reference) = runBinary(operation, a, aShape, b, bShape)
                #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern), "\(operation) \(aShape) \(bShape)")
            }
        }
    }

    @Test func broadcastShapesFollowNumpy() {
        #expect(BroadcastLayout.broadcastDimensions([[2, 1, 3], [4, 1]]) == [2, 4, 3])
        #expect(BroadcastLayout.broadcastDimensions([[], [3]]) == [3])
        #expect(BroadcastLayout.broadcastDimensions([[5, 0, 3], [1, 3]]) == [5, 0, 3])
        #expect(BroadcastLayout.broadcastDimensions([[2, 3], [3, 2]]) == nil)
        #expect(BroadcastLayout.broadcastDimensions([[0], [2]]) == nil)
        // Per-channel: N·C rows of H·W, the channel operand constant along each row.
        let layout = BroadcastLayout(operandDimensions: [[2, 3, 4, 5], [3, 1, 1]])
        #expect(layout?.innerCount == 20)
        #expect(layout?.innerStrides == [1, 0])
        #expect(layout?.outerCount == 6)
    }

    @Test func largeTensorsSplitIdenticallyForOneAndTwoThreads() {
        let a = pseudoRandomFloats(3 * 70_001, seed: 5)
        let b = pseudoRandomFloats(70_001, seed: 6)
        let one = runBinary(.divide, a, [3, 70_001], b, [70_001], threads: 1)
        let two = runBinary(.divide, a, [3, 70_001], b, [70_001], threads: 2)
        #expect(one.fast.map(\.bitPattern) == two.fast.map(\.bitPattern))
        #expect(one.fast.map(\.bitPattern) == one.reference.map(\.bitPattern))
        let rows = pseudoRandomFloats(40_000 * 3, seed: 7)
        let small = runBinary(.add, rows, [40_000, 3], [1, 2, 3], [3], threads: 2)
        #expect(small.fast.map(\.bitPattern) == small.reference.map(\.bitPattern))
    }

    static let unaryOperations: [UnaryFloatOperation] = [
        .relu, .leakyRelu(alpha: 0.1), .sigmoid, .hardSigmoid(alpha: 0.2, beta: 0.5), .hardSwish, .tanh, .erf, .gelu,
        .geluTanh, .sqrt, .exp, .log, .negate, .absolute, .reciprocal, .floor, .ceil, .round,
        .clip(minimum: -1, maximum: 2), .clip(minimum: 3, maximum: 1), .softplus, .softsign, .elu(alpha: 1),
        .selu(alpha: 1.67, gamma: 1.05), .sin, .cos, .sign, .mish, .square, .identity, .powerOneHalf,
    ]

    @Test func unaryVectorLoopsMatchScalarReference() {
        for operation in Self.unaryOperations {
            for length in kernelLengths {
                var input = pseudoRandomFloats(length, seed: 8)
                if length > 3 { input[1] = .nan; input[2] = -0.0; input[3] = -.infinity }
                var fast = [Float](repeating: 0, count: length)
                var reference = fast
                input.withUnsafeBufferPointer { x in
                    fast.withUnsafeMutableBufferPointer { y in
                        guard let px = x.baseAddress, let py = y.baseAddress else { return }
                        unaryFloat32(operation, px, output: py, count: length, context: ComputeContext())
                    }
                    reference.withUnsafeMutableBufferPointer { y in
                        guard let px = x.baseAddress, let py = y.baseAddress else { return }
                        unaryFloat32Reference(operation, px, output: py, count: length)
                    }
                }
                expectClose(fast, reference)
            }
        }
    }

    @Test func unaryFunctionsAgreeWithLibmAndPowf() {
        let inputs = pseudoRandomFloats(4001, seed: 9, low: -9, high: 9)
        for x in inputs {
            #expect(UnaryFloatOperation.exp.apply(x) == expf(x))
            #expect(UnaryFloatOperation.tanh.apply(x) == tanhf(x))
            #expect(UnaryFloatOperation.erf.apply(x) == erff(x))
            #expect(closeInUlps(UnaryFloatOperation.sigmoid.apply(x), Float(1 / (1 + exp(-Double(x)))), 2))
            // Pow fast paths against powf: x·x and √x are correctly rounded, powf within 1 ulp.
            #expect(closeInUlps(UnaryFloatOperation.square.apply(x), powf(x, 2), 1))
            #expect(closeInUlps(UnaryFloatOperation.powerOneHalf.apply(abs(x)), powf(abs(x), 0.5), 1))
        }
        #expect(UnaryFloatOperation.powerOneHalf.apply(-.infinity) == powf(-.infinity, 0.5))
        #expect(UnaryFloatOperation.powerOneHalf.apply(-0.0).sign == powf(-0.0, 0.5).sign)
        #expect(UnaryFloatOperation.powerOneHalf.apply(-1).isNaN)
    }

    @Test func activationsMatchPyTorch() {
        let x: [Float] = [-2.5, -1.0, -0.25, 0.0, 0.5, 1.0, 3.0]
        func apply(_ operation: UnaryFloatOperation) -> [Float] { x.map(operation.apply) }
        // torch.nn.functional.gelu / sigmoid / hardswish / softplus / mish on the same inputs (float32).
        expectClose(
            apply(.gelu), [-0.015524179, -0.15865526, -0.10032342, 0, 0.34573123, 0.8413447, 2.9959497], ulps: 4)
        expectClose(
            apply(.geluTanh), [-0.015084296, -0.158808, -0.100324646, 0, 0.345714, 0.841192, 2.9963627], ulps: 4)
        expectClose(
            apply(.sigmoid), [0.075858176, 0.26894143, 0.4378235, 0.5, 0.62245935, 0.7310586, 0.95257413], ulps: 2)
        // ONNX's x·clamp(x/6 + 0.5) rounds differently from PyTorch's x·clamp(x + 3, 0, 6)/6.
        expectClose(apply(.hardSwish), [-0.20833333, -0.33333334, -0.114583336, 0, 0.29166666, 0.6666667, 3], ulps: 8)
        expectClose(
            apply(.softplus), [0.078889735, 0.3132617, 0.5759394, 0.6931472, 0.974077, 1.3132616, 3.0485873], ulps: 4)
        expectClose(
            apply(.mish), [-0.19681619, -0.30340144, -0.12992696, 0, 0.37524524, 0.86509836, 2.986535], ulps: 4)
    }

    @Test func integerDivisionTruncatesTowardZero() {
        // numpy: np.trunc(np.array([-7, 7, -7, 7]) / np.array([2, -2, 2, -2])) → [-3, -3, -3, -3]
        #expect(truncatingDivide(Int64(-7), 2) == -3)
        #expect(truncatingDivide(Int64(7), -2) == -3)
        #expect(truncatingDivide(Int32(7), 2) == 3)
        #expect(truncatingDivide(Int64(5), 0) == 0)
        #expect(truncatingDivide(Int64.min, -1) == Int64.min)
    }
}

@Suite struct CastKernelTests {
    @Test func float16ToFloat32IsExactForEveryPattern() {
        for bits in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let actual = float32(fromFloat16Bits: bits)
            #expect(actual.bitPattern == expected.bitPattern || (actual.isNaN && expected.isNaN), "bits \(bits)")
        }
    }

    @Test func float32ToFloat16RoundsLikeSwiftFloat16() {
        var values = pseudoRandomFloats(20_000, seed: 10, low: -70_000, high: 70_000)
        values += pseudoRandomFloats(20_000, seed: 11, low: -1e-4, high: 1e-4)
        // Every half, and the midpoints between neighbouring halves (ties to even).
        for bits in UInt16(0)..<0x7c00 {
            let value = Float(Float16(bitPattern: bits))
            let next = Float(Float16(bitPattern: bits + 1))
            values += [value, -value, (value + next) / 2, value.nextUp, next.nextDown]
        }
        values += [.infinity, -.infinity, 65_519, 65_520, 1e-8, 6e-8, .greatestFiniteMagnitude]
        for value in values {
            #expect(float16Bits(fromFloat32: value) == Float16(value).bitPattern, "value \(value)")
        }
        #expect(Float16(bitPattern: float16Bits(fromFloat32: .nan)).isNaN)
        // numpy: np.array([1.0, 65519.0, 65520.0, 1e-8, 6e-8, 0.1], np.float32).astype(np.float16).view(np.uint16)
        let numpy: [UInt16] = [15360, 31743, 31744, 0, 1, 11878]
        #expect([1.0, 65519.0, 65520.0, 1e-8, 6e-8, 0.1].map { float16Bits(fromFloat32: $0) } == numpy)
    }

    func cast<S, D>(_ values: [S], from: DType, to: DType, as _: D.Type) -> [D] {
        let output = UnsafeMutableRawPointer.allocate(byteCount: max(1, values.count * to.byteSize), alignment: 16)
        defer { output.deallocate() }
        values.withUnsafeBytes { source in
            guard let base = source.baseAddress else { return }
            castElements(base, from: from, to: output, to, count: values.count)
        }
        return Array(UnsafeBufferPointer(start: output.assumingMemoryBound(to: D.self), count: values.count))
    }

    @Test func castFollowsCAndNumpyRules() {
        // numpy: np.array([1.5, -1.5, 2.7, -2.7, 0.5], np.float32).astype(np.int32) → [1, -1, 2, -2, 0]
        #expect(
            cast([Float(1.5), -1.5, 2.7, -2.7, 0.5], from: .float32, to: .int32, as: Int32.self) == [1, -1, 2, -2, 0])
        // Apus's choices where C is undefined: NaN → 0, out of range saturates.
        #expect(
            cast([Float.nan, 1e10, -1e10, 300, -300], from: .float32, to: .int8, as: Int8.self) == [
                0, 127, -128, 127, -128,
            ])
        #expect(cast([Float.nan, 1e30, -1], from: .float32, to: .int64, as: Int64.self) == [0, Int64.max, -1])
        // numpy: np.array([300, -129, 127, -128], np.int64).astype(np.int8) → [44, 127, 127, -128]
        #expect(cast([Int64(300), -129, 127, -128], from: .int64, to: .int8, as: Int8.self) == [44, 127, 127, -128])
        #expect(
            cast([Float(0), -0.0, .nan, 2], from: .float32, to: .bool, as: Bool.self) == [false, false, true, true])
        #expect(cast([true, false], from: .bool, to: .float32, as: Float.self) == [1, 0])
        #expect(cast([Int64(1) << 40, -3], from: .int64, to: .float32, as: Float.self) == [0x1p40, -3])
        #expect(cast([UInt8(255), 0], from: .uint8, to: .int32, as: Int32.self) == [255, 0])
        let halves = cast([Float(1), 0.1, -2], from: .float32, to: .float16, as: UInt16.self)
        #expect(cast(halves, from: .float16, to: .float32, as: Float.self) == [1, Float(Float16(0.1)), -2])
        #expect(cast(halves, from: .float16, to: .int64, as: Int64.self) == [1, 0, -2])
        #expect(cast([Float](), from: .float32, to: .int64, as: Int64.self) == [])
    }
}

/// The vector exp, sigmoid and SiLU of fused epilogues against the C library (in Double) on a
/// dense grid over the whole clamped range, plus the limits and NaN.
@Suite struct VectorMathTests {
    @Test func expSigmoidAndSiLUStayWithinAFewUlps() {
        var worstExp: Float = 0
        var worstSigmoid: Float = 0
        var worstSiLU: Float = 0
        var x: Float = -87.3
        while x < 88.7 {
            let lanes = SIMD16<Float>((0..<16).map { x + Float($0) * 0.000_731 })
            let e = VectorMath.exp(lanes)
            let s = VectorMath.sigmoid(lanes)
            let y = VectorMath.silu(lanes)
            for lane in 0..<16 {
                let v = Double(lanes[lane])
                let exact = exp(v)
                worstExp = max(worstExp, Float(abs(Double(e[lane]) - exact) / Double(Float(exact).ulp)))
                let sigmoid = 1 / (1 + exp(-v))
                if Float(sigmoid).isNormal {
                    worstSigmoid = max(worstSigmoid, Float(abs(Double(s[lane]) - sigmoid) / Double(Float(sigmoid).ulp)))
                }
                let silu = v * sigmoid
                if Float(silu).isNormal {
                    worstSiLU = max(worstSiLU, Float(abs(Double(y[lane]) - silu) / Double(Float(silu).ulp)))
                }
            }
            x += 0.0117
        }
        #expect(worstExp <= 4, "exp: \(worstExp) ulp")
        #expect(worstSigmoid <= 4, "sigmoid: \(worstSigmoid) ulp")
        #expect(worstSiLU <= 5, "silu: \(worstSiLU) ulp")
        var special = SIMD16<Float>(repeating: 1)
        special[0] = -100
        special[1] = .nan
        special[2] = .infinity
        special[3] = 100
        let limits = VectorMath.silu(special)
        #expect(abs(limits[0]) < 1e-30 && limits[1].isNaN && limits[2] == .infinity && limits[3] == 100)
        let sigmoidLimits = VectorMath.sigmoid(SIMD16<Float>(-200, 200, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13))
        #expect(sigmoidLimits[0] == 0 && sigmoidLimits[1] == 1 && sigmoidLimits[2] == 0.5)
    }

    /// The AVX-512 sigmoid and SiLU of the C kernels (`PackedGemm.logistic`, whose exp scales by
    /// 2ⁿ with `vscalefps`) against the C library in Double, on the same grid, plus the limits.
    @Test(.enabled(if: PackedGemm.hasAVX512, "needs AVX-512"))
    func avx512SigmoidAndSiLUStayWithinAFewUlps() {
        var inputs = [Float]()
        var x: Float = -87.3
        while x < 88.7 {
            inputs.append(x)
            x += 0.000_731 * 3.1
        }
        for silu in [false, true] {
            var values = inputs
            values.withUnsafeMutableBufferPointer { PackedGemm.logistic($0.baseAddress!, count: $0.count, silu: silu) }
            // Worst error in ulp where |x| ≤ 30, and beyond (where the values are below 3e-12 or
            // round to x and 1, and exp's reduction, ln 2 in one float, adds up to 2.5e-7).
            var worst: Float = 0
            var worstTails: Float = 0
            for (v, y) in zip(inputs, values) {
                let sigmoid = 1 / (1 + exp(-Double(v)))
                let exact = silu ? Double(v) * sigmoid : sigmoid
                if Float(exact).isNormal {
                    let error = Float(abs(Double(y) - exact) / Double(Float(exact).ulp))
                    if abs(v) <= 30 { worst = max(worst, error) } else { worstTails = max(worstTails, error) }
                }
            }
            #expect(worst <= (silu ? 5 : 4), "\(silu ? "silu" : "sigmoid"): \(worst) ulp")
            #expect(worstTails <= 7, "\(silu ? "silu" : "sigmoid") beyond |x| = 30: \(worstTails) ulp")
        }
        var special: [Float] = [-200, -100, .nan, .infinity, -.infinity, 100, 200, 0]
        special.withUnsafeMutableBufferPointer { PackedGemm.logistic($0.baseAddress!, count: $0.count, silu: true) }
        #expect(abs(special[0]) < 1e-30 && abs(special[1]) < 1e-30 && special[2].isNaN && special[3] == .infinity)
        #expect(special[4].isNaN && special[5] == 100 && special[6] == 200 && special[7] == 0)
        var sigmoids: [Float] = [-200, .infinity, -.infinity, 0, 200]
        sigmoids.withUnsafeMutableBufferPointer { PackedGemm.logistic($0.baseAddress!, count: $0.count, silu: false) }
        #expect(sigmoids == [0, 1, 0, 0.5, 1])
    }
}
