import ApusOps
import ApusTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `PRelu`: `x < 0 ? slope · x : x`, with `slope` broadcast to the shape of `x` (one-way).
/// Before opset 7 a 1-D slope of one value per channel applies along axis 1, as PyTorch exported it.
struct PRelu: Operator {
    let channelSlope: Bool

    init(opset: Int) { channelSlope = opset < 7 }

    /// The shape the slope broadcasts with.
    private func slopeShape(_ slope: Shape, input: Shape) -> Shape {
        guard channelSlope, slope.rank == 1, input.rank >= 2, slope[0] == input[1], slope[0] != 1 else { return slope }
        return Shape([slope[0]] + Array(repeating: 1, count: input.rank - 2))
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...2)
        let x = try inputs.required(0)
        var slope = try inputs.required(1)
        guard x.dtype == .float32 else { throw .unsupported("PRelu of \(x.dtype) (float32 only)") }
        guard slope.dtype == x.dtype else { throw .dtypeMismatch(input: 1, expected: x.dtype, actual: slope.dtype) }
        slope.shape = slopeShape(slope.shape, input: x.shape)
        slope.constant = nil
        guard try broadcastShape([x, slope]) == x.shape else {
            throw .invalidShape("PRelu slope \(slope.shape) does not broadcast to input \(x.shape)")
        }
        return [ValueFact(dtype: x.dtype, shape: x.shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let slope = try inputs.required(1)
        let layout = try broadcastLayout([x.shape, slopeShape(slope.shape, input: x.shape)])
        broadcastMap(
            x.pointer(as: Float.self), slope.pointer(as: Float.self), output: outputs[0].pointer(as: Float.self),
            layout: layout, context: context
        ) { value, slope in value < 0 ? slope * value : value }
    }
}

/// `Mod`: the remainder with the divisor's sign (`fmod = 0`, integers only) or with the
/// dividend's sign (`fmod = 1`, C `fmod`). Integer division by zero gives 0 instead of trapping.
struct Mod: Operator {
    let fmod: Bool

    init(node: Node) throws(OperatorError) {
        fmod = try node.int("fmod", default: 0) != 0
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...2)
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard [.float32, .float16, .int64, .int32, .int8, .uint8].contains(a.dtype) else {
            throw .unsupported("Mod of \(a.dtype)")
        }
        guard b.dtype == a.dtype else { throw .dtypeMismatch(input: 1, expected: a.dtype, actual: b.dtype) }
        if a.dtype.isFloatingPoint, !fmod {
            throw .invalidAttribute("fmod", reason: "must be 1 for floating-point inputs")
        }
        return [ValueFact(dtype: a.dtype, shape: try broadcastShape([a, b]))]
    }

    @inline(__always)
    static func remainder<T: FixedWidthInteger>(_ a: T, _ b: T, fmod: Bool) -> T {
        guard b != 0 else { return 0 }
        let (r, overflow) = a.remainderReportingOverflow(dividingBy: b)
        let truncated = overflow ? 0 : r
        if fmod || truncated == 0 || (truncated < 0) == (b < 0) { return truncated }
        return truncated + b
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        let layout = try broadcastLayout([a.shape, b.shape])
        let fmod = self.fmod
        func integer<T: FixedWidthInteger & TensorScalar>(_: T.Type) {
            broadcastMap(
                a.pointer(as: T.self), b.pointer(as: T.self), output: outputs[0].pointer(as: T.self), layout: layout,
                context: context
            ) { x, y in Mod.remainder(x, y, fmod: fmod) }
        }
        switch a.dtype {
        case .float32:
            broadcastMap(
                a.pointer(as: Float.self), b.pointer(as: Float.self), output: outputs[0].pointer(as: Float.self),
                layout: layout, context: context
            ) { x, y in x.truncatingRemainder(dividingBy: y) }
        case .float16:
            broadcastMap(
                a.pointer(as: Float16.self), b.pointer(as: Float16.self), output: outputs[0].pointer(as: Float16.self),
                layout: layout, context: context
            ) { x, y in Float16(Float(x).truncatingRemainder(dividingBy: Float(y))) }
        case .int64: integer(Int64.self)
        case .int32: integer(Int32.self)
        case .int8: integer(Int8.self)
        case .uint8: integer(UInt8.self)
        default: throw .unsupportedDType(input: 0, a.dtype)
        }
    }
}

/// A float32 elementwise function defined by a closure: `ThresholdedRelu`, `Shrink`.
struct FloatMap: Operator {
    let name: String
    let function: @Sendable (Float) -> Float

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let x = try inputs.required(0)
        guard x.dtype == .float32 else { throw .unsupported("\(name) of \(x.dtype) (float32 only)") }
        return [x]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let source = x.pointer(as: Float.self)
        let destination = outputs[0].pointer(as: Float.self)
        let count = x.elementCount
        let chunk = 1 << 16
        let function = self.function
        /// One chunk of elements per task.
        struct Chunks: ParallelRanges {
            let source: UnsafePointer<Float>
            let destination: UnsafeMutablePointer<Float>
            let function: @Sendable (Float) -> Float

            func run(_ range: Range<Int>) {
                for index in range { destination[index] = function(source[index]) }
            }
        }
        context.parallelFor(
            count, blockSize: chunk, Chunks(source: source, destination: destination, function: function))
    }

    /// `ThresholdedRelu`: `x > alpha ? x : 0`.
    static func thresholdedRelu(node: Node) throws(OperatorError) -> FloatMap {
        let alpha = try node.float("alpha", default: 1)
        return FloatMap(name: "ThresholdedRelu") { $0 > alpha ? $0 : 0 }
    }

    /// `Shrink`: `x < −lambd ? x + bias : x > lambd ? x − bias : 0`.
    static func shrink(node: Node) throws(OperatorError) -> FloatMap {
        let lambd = try node.float("lambd", default: 0.5)
        let bias = try node.float("bias", default: 0)
        return FloatMap(name: "Shrink") { $0 < -lambd ? $0 + bias : ($0 > lambd ? $0 - bias : 0) }
    }
}

/// `IsNaN` and `IsInf` (`detect_negative`, `detect_positive`): a bool per float element.
struct FloatClassify: Operator {
    let name: String
    let test: @Sendable (Float) -> Bool

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let x = try inputs.required(0)
        guard x.dtype == .float32 || x.dtype == .float16 else { throw .unsupported("\(name) of \(x.dtype)") }
        return [ValueFact(dtype: .bool, shape: x.shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let destination = outputs[0].pointer(as: Bool.self)
        if x.dtype == .float16 {
            let source = x.pointer(as: Float16.self)
            for index in 0..<x.elementCount { destination[index] = test(Float(source[index])) }
        } else {
            let source = x.pointer(as: Float.self)
            for index in 0..<x.elementCount { destination[index] = test(source[index]) }
        }
    }

    /// `IsInf`, detecting the infinities its attributes select.
    static func isInf(node: Node) throws(OperatorError) -> FloatClassify {
        let negative = try node.int("detect_negative", default: 1) != 0
        let positive = try node.int("detect_positive", default: 1) != 0
        return FloatClassify(name: "IsInf") { $0.isInfinite && ($0 < 0 ? negative : positive) }
    }
}

/// `ReduceLogSum` (`log Σ x`) and `ReduceLogSumExp` (`log Σ exp x`), on float32. The sum of
/// exponentials is taken after subtracting the tensor's largest finite element, which is added
/// back after the logarithm, so large inputs do not overflow.
struct LogReduce: Operator {
    let sum: Reduce
    let exponentiate: Bool

    init(node: Node, opset: Int, exponentiate: Bool) throws(OperatorError) {
        // `Reduce` takes ReduceSum's opset-13 rule for axes as an input; these operators follow
        // the opset-18 rule of the other reductions.
        sum = try Reduce(node: node, opset: opset >= 18 ? 18 : 12, operation: .sum)
        self.exponentiate = exponentiate
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try sum.outputFacts(inputs)
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let facts: [ValueFact?] = [
            ValueFact(dtype: x.dtype, shape: x.shape), inputs.optional(1).map { ValueFact(constant: $0) },
        ]
        let axes = try sum.axes(facts, rank: x.shape.rank)
        if axes.isEmpty {
            LayoutSupport.copyThrough(x, to: outputs[0])
            return
        }
        var source = x
        var shift: Float = 0
        if exponentiate {
            let values = x.pointer(as: Float.self)
            var largest = -Float.infinity
            for index in 0..<x.elementCount where values[index].isFinite { largest = max(largest, values[index]) }
            if largest.isFinite { shift = largest }
            do {
                source = try Tensor(zeros: x.shape, dtype: .float32)
            } catch {
                throw .tensor(error)
            }
            let exponentials = source.pointer(as: Float.self)
            for index in 0..<x.elementCount { exponentials[index] = expf(values[index] - shift) }
        }
        let output = outputs[0].pointer(as: Float.self)
        reduceFloat32(
            .sum, source.pointer(as: Float.self), dimensions: x.shape.dimensions, axes: axes, output: output,
            context: context)
        for index in 0..<outputs[0].elementCount { output[index] = logf(output[index]) + shift }
    }
}
