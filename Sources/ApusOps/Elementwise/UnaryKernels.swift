#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A float32 elementwise function (ONNX activations and math).
///
/// Piecewise-linear functions, `Sqrt`, `Floor`, `Ceil`, `Round` and `Reciprocal` run as SIMD16
/// loops. Transcendental functions (`Exp`, `Log`, `Tanh`, `Erf`, `Sigmoid`, `Gelu`, …) call the C
/// library per element, so they are exactly as accurate as `expf`/`tanhf`/`erff`.
public enum UnaryFloatOperation: Sendable, Equatable {
    case relu
    case leakyRelu(alpha: Float)
    case sigmoid
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    case tanh
    case erf
    /// `0.5·x·(1 + erf(x/√2))`.
    case gelu
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    case geluTanh
    case sqrt
    case exp
    case log
    case negate
    case absolute
    case reciprocal
    case floor
    case ceil
    /// Round half to even.
    case round
    /// `min(max(x, minimum), maximum)`; NaN stays NaN.
    case clip(minimum: Float, maximum: Float)
    case softplus
    case softsign
    case elu(alpha: Float)
    case selu(alpha: Float, gamma: Float)
    case sin
    case cos
    case sign
    /// `x·tanh(softplus(x))`.
    case mish
    /// `x·x` (`Pow` with exponent 2).
    case square
    /// `x` unchanged (`Pow` with exponent 1).
    case identity
    /// `powf(x, 0.5)` computed with a square root: `√x`, except `−0 → +0` and `−∞ → +∞` as `powf` gives.
    case powerOneHalf

    /// The scalar result: the reference for the vector loops.
    @inline(__always)
    public func apply(_ x: Float) -> Float {
        switch self {
        case .relu: x < 0 ? 0 : x
        case .leakyRelu(let alpha): x < 0 ? alpha * x : x
        case .sigmoid: sigmoidScalar(x)
        case .hardSigmoid(let alpha, let beta): clamp01(alpha * x + beta)
        case .hardSwish: x * clamp01(x * (1 / 6) + 0.5)
        case .tanh: tanhf(x)
        case .erf: erff(x)
        case .gelu: 0.5 * x * (1 + erff(x * 0.707_106_77))
        case .geluTanh: 0.5 * x * (1 + tanhf(0.797_884_6 * (x + 0.044715 * x * x * x)))
        case .sqrt: x.squareRoot()
        case .exp: expf(x)
        case .log: logf(x)
        case .negate: -x
        case .absolute: Swift.abs(x)
        case .reciprocal: 1 / x
        case .floor: x.rounded(.down)
        case .ceil: x.rounded(.up)
        case .round: x.rounded(.toNearestOrEven)
        case .clip(let minimum, let maximum): clampScalar(x, minimum, maximum)
        case .softplus: softplusScalar(x)
        case .softsign: x / (1 + Swift.abs(x))
        case .elu(let alpha): x < 0 ? alpha * expm1f(x) : x
        case .selu(let alpha, let gamma): x <= 0 ? gamma * alpha * expm1f(x) : gamma * x
        case .sin: sinf(x)
        case .cos: cosf(x)
        case .sign: x > 0 ? 1 : (x < 0 ? -1 : x)
        case .mish: x * tanhf(softplusScalar(x))
        case .square: x * x
        case .identity: x
        case .powerOneHalf: x == -.infinity ? .infinity : x.squareRoot() + 0
        }
    }
}

/// Raises to `low`, then lowers to `high` (so `high` wins when `low > high`, as ONNX `Clip`); NaN stays.
@inline(__always) func clampScalar(_ x: Float, _ low: Float, _ high: Float) -> Float {
    let raised = x < low ? low : x
    return raised > high ? high : raised
}

/// Clamps to [0, 1], keeping NaN.
@inline(__always) func clamp01(_ x: Float) -> Float { x < 0 ? 0 : (x > 1 ? 1 : x) }

/// The logistic function without overflow: `exp` only ever sees a non-positive argument.
@inline(__always) func sigmoidScalar(_ x: Float) -> Float {
    if x >= 0 { return 1 / (1 + expf(-x)) }
    let e = expf(x)
    return e / (1 + e)
}

/// `log(1 + exp(x))` without overflow for large `x`.
@inline(__always) func softplusScalar(_ x: Float) -> Float {
    x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x))
}

@inline(__always) func clampVector(_ x: SIMD16<Float>, _ low: Float, _ high: Float) -> SIMD16<Float> {
    let raised = x.replacing(with: low, where: x .< low)
    return raised.replacing(with: high, where: raised .> high)
}

/// Maps `count` elements with a vector body and a scalar tail.
@inline(__always)
func mapFloat(
    _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ count: Int,
    _ vector: (SIMD16<Float>) -> SIMD16<Float>, _ scalar: (Float) -> Float
) {
    var index = 0
    while index + 16 <= count {
        storeVector(vector(loadVector(input + index)), output + index)
        index += 16
    }
    while index < count {
        output[index] = scalar(input[index])
        index += 1
    }
}

/// Applies `operation` to `count` elements (`input` may equal `output`).
///
/// Large inputs are split into chunks of ``BroadcastLayout/chunkElementCount`` elements run on
/// `context`'s threads.
public func unaryFloat32(
    _ operation: UnaryFloatOperation, _ input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int,
    context: ComputeContext
) {
    let chunk = BroadcastLayout.chunkElementCount
    /// One chunk of elements per task.
    struct Chunks: ParallelRanges {
        let operation: UnaryFloatOperation
        let input: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>

        func run(_ range: Range<Int>) {
            unaryFloat32Chunk(operation, input + range.lowerBound, output + range.lowerBound, range.count)
        }
    }
    context.parallelFor(count, blockSize: chunk, Chunks(operation: operation, input: input, output: output))
}

func unaryFloat32Chunk(
    _ operation: UnaryFloatOperation, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ count: Int
) {
    switch operation {
    case .relu:
        mapFloat(input, output, count, { $0.replacing(with: 0, where: $0 .< 0) }, operation.apply)
    case .leakyRelu(let alpha):
        mapFloat(input, output, count, { $0.replacing(with: $0 * alpha, where: $0 .< 0) }, operation.apply)
    case .hardSigmoid(let alpha, let beta):
        mapFloat(input, output, count, { clampVector($0 * alpha + beta, 0, 1) }, operation.apply)
    case .hardSwish:
        mapFloat(input, output, count, { $0 * clampVector($0 * (1 / 6) + 0.5, 0, 1) }, operation.apply)
    case .sqrt:
        mapFloat(input, output, count, { $0.squareRoot() }, operation.apply)
    case .negate:
        mapFloat(input, output, count, { -$0 }, operation.apply)
    case .absolute:
        mapFloat(input, output, count, { $0.replacing(with: -$0, where: $0 .< 0) }, operation.apply)
    case .reciprocal:
        mapFloat(input, output, count, { 1 / $0 }, operation.apply)
    case .floor:
        mapFloat(input, output, count, { $0.rounded(.down) }, operation.apply)
    case .ceil:
        mapFloat(input, output, count, { $0.rounded(.up) }, operation.apply)
    case .round:
        mapFloat(input, output, count, { $0.rounded(.toNearestOrEven) }, operation.apply)
    case .clip(let minimum, let maximum):
        mapFloat(input, output, count, { clampVector($0, minimum, maximum) }, operation.apply)
    case .square:
        mapFloat(input, output, count, { $0 * $0 }, operation.apply)
    case .identity:
        if UnsafePointer(output) != input { output.update(from: input, count: count) }
    case .powerOneHalf:
        mapFloat(
            input, output, count, { ($0.squareRoot() + 0).replacing(with: .infinity, where: $0 .== -.infinity) },
            operation.apply)
    default:
        for index in 0..<count { output[index] = operation.apply(input[index]) }
    }
}

/// The plain reference for ``unaryFloat32(_:_:output:count:context:)``.
public func unaryFloat32Reference(
    _ operation: UnaryFloatOperation, _ input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int
) {
    for index in 0..<count { output[index] = operation.apply(input[index]) }
}
