import ApusOps
import ApusTensor

/// Building small constant tensors from attribute numbers.
enum ConstantValues {
    /// A rank-0 tensor of `dtype` holding `value` (truncated toward zero for integer types,
    /// `value != 0` for bool).
    static func tensor(_ value: Float, as dtype: DType) throws(OperatorError) -> Tensor {
        switch dtype {
        case .float32: return Tensor(scalar: value)
        case .float16: return Tensor(scalar: Float16(value))
        case .bool: return Tensor(scalar: value != 0)
        case .int64, .int32, .int8, .uint8:
            guard let integer = Int64(exactly: value.rounded(.towardZero)) else {
                throw .outOfRange("value \(value) does not fit \(dtype)")
            }
            switch dtype {
            case .int64: return Tensor(scalar: integer)
            case .int32:
                guard let narrow = Int32(exactly: integer) else {
                    throw .outOfRange("value \(value) does not fit int32")
                }
                return Tensor(scalar: narrow)
            case .int8:
                guard let narrow = Int8(exactly: integer) else { throw .outOfRange("value \(value) does not fit int8") }
                return Tensor(scalar: narrow)
            default:
                guard let narrow = UInt8(exactly: integer) else {
                    throw .outOfRange("value \(value) does not fit uint8")
                }
                return Tensor(scalar: narrow)
            }
        }
    }
}

/// `Constant`: one of the attributes `value` (a tensor), `value_float`, `value_floats`,
/// `value_int` or `value_ints`; its output fact carries the value.
struct Constant: Operator {
    let value: Tensor

    init(node: Node) throws(OperatorError) {
        let names = ["value", "value_float", "value_floats", "value_int", "value_ints"]
        let present = names.filter { node.attributes[$0] != nil }
        for unsupported in ["sparse_value", "value_string", "value_strings"] where node.attributes[unsupported] != nil {
            throw .unsupported("Constant with attribute '\(unsupported)'")
        }
        guard present.count == 1 else {
            throw .invalidAttribute("value", reason: "Constant needs exactly one of \(names), has \(present)")
        }
        if let tensor = try node.tensor("value") {
            value = tensor
        } else if let float = try node.float("value_float") {
            value = Tensor(scalar: float)
        } else if let floats = try node.floats("value_floats") {
            value = Tensor(shape: [floats.count], scalars: floats)
        } else if let int = try node.int("value_int") {
            value = Tensor(scalar: Int64(int))
        } else {
            let ints = try node.ints("value_ints") ?? []
            value = Tensor(shape: [ints.count], scalars: ints.map { Int64($0) })
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(0...0)
        return [ValueFact(constant: value)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        LayoutSupport.copyThrough(value, to: outputs[0])
    }
}

/// `ConstantOfShape`: a tensor of the constant shape input filled with the one-element `value`
/// attribute (default float32 0). Outputs over ``GeneratedTensorLimits/maximumByteCount`` are refused.
struct ConstantOfShape: Operator {
    let value: Tensor

    init(node: Node) throws(OperatorError) {
        if let tensor = try node.tensor("value") {
            guard tensor.elementCount == 1 else {
                throw .invalidAttribute("value", reason: "must hold one element, holds \(tensor.elementCount)")
            }
            value = tensor
        } else {
            value = Tensor(scalar: Float(0))
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        guard let dimensions = try LayoutSupport.constantIntegers(inputs, 0) else { throw .missingInput(index: 0) }
        guard dimensions.allSatisfy({ $0 >= 0 }) else {
            throw .invalidShape("ConstantOfShape shape \(dimensions) has a negative dimension")
        }
        let shape = try LayoutSupport.shape(dimensions)
        try GeneratedTensorLimits.check(shape, dtype: value.dtype, operator: "ConstantOfShape")
        return [ValueFact(dtype: value.dtype, shape: shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let output = outputs[0]
        Layout.fill(
            output.rawPointer, count: output.elementCount, elementByteSize: value.dtype.byteSize,
            value: value.rawPointer)
    }
}

/// `Range`: `start, start + delta, …` up to but excluding `limit`, for float32, int32 and int64
/// scalars. The element count depends on the values, so the inputs must be constant.
struct RangeOperator: Operator {
    init(node: Node) throws(OperatorError) {}

    /// The element count `max(ceil((limit − start) / delta), 0)`.
    static func count(start: Double, limit: Double, delta: Double) throws(OperatorError) -> Int {
        guard delta != 0 else { throw .invalidShape("Range delta is 0") }
        let count = ((limit - start) / delta).rounded(.up)
        guard count.isFinite || count < 0 else {
            throw .invalidShape("Range from \(start) to \(limit) by \(delta) has no finite length")
        }
        guard count > 0 else { return 0 }
        guard let exact = Int(exactly: count) else {
            throw .invalidShape("Range from \(start) to \(limit) by \(delta) has \(count) elements")
        }
        return exact
    }

    /// The element count for integer bounds, in exact arithmetic.
    static func count(start: Int, limit: Int, delta: Int) throws(OperatorError) -> Int {
        guard delta != 0 else { throw .invalidShape("Range delta is 0") }
        let (span, overflow) = limit.subtractingReportingOverflow(start)
        guard !overflow else { throw .invalidShape("Range from \(start) to \(limit) overflows") }
        if delta > 0 { return span > 0 ? (span - 1) / delta + 1 : 0 }
        let magnitude = delta == Int.min ? Int.max : -delta
        return span < 0 ? (-(span + 1)) / magnitude + 1 : 0
    }

    private static func scalar(_ tensor: Tensor, input: Int) throws(OperatorError) -> Double {
        guard tensor.elementCount == 1 else {
            throw .invalidShape("Range input \(input) must be a scalar, is \(tensor.shape)")
        }
        switch tensor.dtype {
        case .float32: return Double(tensor.pointer(as: Float.self)[0])
        case .int64: return Double(tensor.pointer(as: Int64.self)[0])
        case .int32: return Double(tensor.pointer(as: Int32.self)[0])
        default: throw .unsupportedDType(input: input, tensor.dtype)
        }
    }

    private static func elementCount(_ tensors: [Tensor]) throws(OperatorError) -> Int {
        if tensors[0].dtype == .float32 {
            return try count(
                start: try scalar(tensors[0], input: 0), limit: try scalar(tensors[1], input: 1),
                delta: try scalar(tensors[2], input: 2))
        }
        let values = try (0..<3).map { index throws(OperatorError) in
            try LayoutSupport.integers(tensors[index], input: index)[0]
        }
        return try count(start: values[0], limit: values[1], delta: values[2])
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(3...3)
        var constants: [Tensor] = []
        for index in 0..<3 {
            let fact = try inputs.required(index)
            guard fact.dtype == inputs[0]?.dtype else {
                throw .dtypeMismatch(input: index, expected: inputs[0]?.dtype ?? fact.dtype, actual: fact.dtype)
            }
            guard let constant = fact.constant else { throw .notConstant(input: index) }
            _ = try Self.scalar(constant, input: index)
            constants.append(constant)
        }
        let shape = Shape([try Self.elementCount(constants)])
        try GeneratedTensorLimits.check(shape, dtype: constants[0].dtype, operator: "Range")
        return [ValueFact(dtype: constants[0].dtype, shape: shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let tensors = [try inputs.required(0), try inputs.required(1), try inputs.required(2)]
        let output = outputs[0]
        let count = output.elementCount
        switch output.dtype {
        case .float32:
            let start = tensors[0].pointer(as: Float.self)[0]
            let delta = tensors[2].pointer(as: Float.self)[0]
            let pointer = output.pointer(as: Float.self)
            for index in 0..<count { pointer[index] = start + Float(index) * delta }
        case .int64:
            let start = tensors[0].pointer(as: Int64.self)[0]
            let delta = tensors[2].pointer(as: Int64.self)[0]
            let pointer = output.pointer(as: Int64.self)
            for index in 0..<count { pointer[index] = start &+ Int64(index) &* delta }
        case .int32:
            let start = tensors[0].pointer(as: Int32.self)[0]
            let delta = tensors[2].pointer(as: Int32.self)[0]
            let pointer = output.pointer(as: Int32.self)
            for index in 0..<count { pointer[index] = start &+ Int32(truncatingIfNeeded: index) &* delta }
        default:
            throw .unsupportedDType(input: 0, output.dtype)
        }
    }
}
