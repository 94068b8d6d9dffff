import ApusOps
import ApusTensor

/// One-input elementwise functions: activations (`Relu`, `Sigmoid`, `Gelu`, …) and math (`Exp`,
/// `Sqrt`, `Floor`, …) on float32; `Neg`, `Abs` and `Sign` also on int64 and int32.
struct UnaryElementwise: Operator {
    let operation: UnaryFloatOperation

    /// Whether the operator also accepts int64/int32 (`Neg`, `Abs`, `Sign`).
    var acceptsIntegers: Bool {
        switch operation {
        case .negate, .absolute, .sign: true
        default: false
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let x = try inputs.required(0)
        guard x.dtype == .float32 || (acceptsIntegers && (x.dtype == .int64 || x.dtype == .int32)) else {
            throw .unsupportedDType(input: 0, x.dtype)
        }
        return [x.withoutConstant]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        switch x.dtype {
        case .float32:
            unaryFloat32(
                operation, x.pointer(as: Float.self), output: outputs[0].pointer(as: Float.self),
                count: x.elementCount, context: context)
        case .int64: integer(Int64.self, x, outputs[0])
        case .int32: integer(Int32.self, x, outputs[0])
        default: throw .unsupportedDType(input: 0, x.dtype)
        }
    }

    func integer<T: FixedWidthInteger & SignedInteger & TensorScalar>(_: T.Type, _ x: Tensor, _ output: Tensor) {
        let source = x.pointer(as: T.self)
        let destination = output.pointer(as: T.self)
        for index in 0..<x.elementCount {
            let value = source[index]
            // Wrapping negation: -min stays min, as in C.
            switch operation {
            case .negate: destination[index] = 0 &- value
            case .absolute: destination[index] = value < 0 ? 0 &- value : value
            default: destination[index] = value > 0 ? 1 : (value < 0 ? -1 : 0)
            }
        }
    }
}

extension UnaryElementwise {
    /// `Gelu` (opset 20): `approximate` is `"none"` (erf) or `"tanh"`.
    static func gelu(node: Node) throws(OperatorError) -> UnaryElementwise {
        switch try node.string("approximate", default: "none") {
        case "none": UnaryElementwise(operation: .gelu)
        case "tanh": UnaryElementwise(operation: .geluTanh)
        case let other: throw .invalidAttribute("approximate", reason: "must be \"none\" or \"tanh\", is \"\(other)\"")
        }
    }
}

/// `Clip`: `min(max(x, min), max)`. From opset 11 `min` and `max` are optional scalar inputs (read
/// when the operator runs, so they need not be constants); before, they are attributes.
struct Clip: Operator {
    /// Bounds from attributes (opset < 11); `nil` means unbounded.
    let attributeMinimum: Float?
    let attributeMaximum: Float?

    init(node: Node, opset: Int) throws(OperatorError) {
        if opset < 11 {
            attributeMinimum = try node.float("min")
            attributeMaximum = try node.float("max")
        } else {
            attributeMinimum = nil
            attributeMaximum = nil
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...3)
        let x = try inputs.required(0)
        guard [.float32, .int64, .int32].contains(x.dtype) else { throw .unsupportedDType(input: 0, x.dtype) }
        for index in 1..<3 {
            guard let bound = inputs.optional(index) else { continue }
            guard bound.dtype == x.dtype else {
                throw .dtypeMismatch(input: index, expected: x.dtype, actual: bound.dtype)
            }
            guard bound.shape.elementCount == 1 else {
                throw .invalidShape("Clip bound (input \(index)) must be a scalar, has shape \(bound.shape)")
            }
        }
        return [x.withoutConstant]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let minimumTensor = inputs.optional(1)
        let maximumTensor = inputs.optional(2)
        switch x.dtype {
        case .float32:
            let minimum = minimumTensor.map { $0.pointer(as: Float.self).pointee } ?? attributeMinimum ?? -.infinity
            let maximum = maximumTensor.map { $0.pointer(as: Float.self).pointee } ?? attributeMaximum ?? .infinity
            unaryFloat32(
                .clip(minimum: minimum, maximum: maximum), x.pointer(as: Float.self),
                output: outputs[0].pointer(as: Float.self), count: x.elementCount, context: context)
        case .int64: Self.clipInteger(Int64.self, x, minimumTensor, maximumTensor, outputs[0])
        case .int32: Self.clipInteger(Int32.self, x, minimumTensor, maximumTensor, outputs[0])
        default: throw .unsupportedDType(input: 0, x.dtype)
        }
    }

    static func clipInteger<T: FixedWidthInteger & TensorScalar>(
        _: T.Type, _ x: Tensor, _ minimumTensor: Tensor?, _ maximumTensor: Tensor?, _ output: Tensor
    ) {
        let minimum = minimumTensor.map { $0.pointer(as: T.self).pointee } ?? T.min
        let maximum = maximumTensor.map { $0.pointer(as: T.self).pointee } ?? T.max
        let source = x.pointer(as: T.self)
        let destination = output.pointer(as: T.self)
        for index in 0..<x.elementCount { destination[index] = Swift.min(Swift.max(source[index], minimum), maximum) }
    }
}
