import ApusOps
import ApusTensor

/// Shared checks of the shape and layout operators: reading integer inputs that must be
/// constant, normalizing axes, building checked shapes.
enum LayoutSupport {
    /// The values of an int64 or int32 tensor.
    static func integers(_ tensor: Tensor, input: Int) throws(OperatorError) -> [Int] {
        switch tensor.dtype {
        case .int64: tensor.withUnsafeBufferPointer(as: Int64.self) { $0.map { Int($0) } }
        case .int32: tensor.withUnsafeBufferPointer(as: Int32.self) { $0.map { Int($0) } }
        default: throw .unsupportedDType(input: input, tensor.dtype)
        }
    }

    /// The values of an optional integer input that must be known at plan time; `nil` when omitted.
    static func constantIntegers(_ inputs: [ValueFact?], _ index: Int) throws(OperatorError) -> [Int]? {
        guard let fact = inputs.optional(index) else { return nil }
        guard let constant = fact.constant else { throw .notConstant(input: index) }
        return try integers(constant, input: index)
    }

    /// The values of an optional integer input at run time; `nil` when omitted.
    static func runIntegers(_ inputs: [Tensor?], _ index: Int) throws(OperatorError) -> [Int]? {
        guard let tensor = inputs.optional(index) else { return nil }
        return try integers(tensor, input: index)
    }

    /// `axis` normalized into `0..<rank`; negative axes count from the end.
    static func axis(_ axis: Int, rank: Int, name: String = "axis") throws(OperatorError) -> Int {
        guard axis >= -rank, axis < rank else {
            throw .outOfRange("\(name) \(axis) is outside [\(-rank), \(rank - 1)] for rank \(rank)")
        }
        return axis < 0 ? axis + rank : axis
    }

    /// A list of distinct axes normalized into `0..<rank`.
    static func distinctAxes(_ axes: [Int], rank: Int, name: String = "axes") throws(OperatorError) -> [Int] {
        var result: [Int] = []
        for value in axes {
            let normalized = try axis(value, rank: rank, name: name)
            guard !result.contains(normalized) else {
                throw .invalidAttribute(name, reason: "axis \(value) repeats in \(axes)")
            }
            result.append(normalized)
        }
        return result
    }

    /// A validated shape (non-negative dimensions, element count fits in `Int`).
    static func shape(_ dimensions: [Int]) throws(OperatorError) -> Shape {
        do {
            return try Shape(validating: dimensions)
        } catch {
            throw .tensor(error)
        }
    }

    /// `a · b`, or an error naming `what` when it overflows.
    static func product(_ a: Int, _ b: Int, _ what: String) throws(OperatorError) -> Int {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow else { throw .invalidShape("\(what): \(a) × \(b) overflows") }
        return value
    }

    /// Checks that the row-major strides of `shape` (the product of its dimensions, zeros counted
    /// as 1) fit in `Int`.
    static func checkStrides(_ shape: Shape) throws(OperatorError) {
        var running = 1
        for dimension in shape.dimensions {
            let (product, overflow) = running.multipliedReportingOverflow(by: Swift.max(dimension, 1))
            guard !overflow else { throw .invalidShape("strides of \(shape) overflow Int") }
            running = product
        }
    }

    /// Copies the input bytes into the output unless the planner ran the node in place.
    static func copyThrough(_ input: Tensor, to output: Tensor) {
        guard input.rawPointer != output.rawPointer else { return }
        output.rawPointer.copyMemory(from: input.rawPointer, byteCount: Swift.min(input.byteCount, output.byteCount))
    }
}

/// An operator whose kernels compute row-major strides of its input and output shapes. A shape
/// such as `[0, 2⁴⁰, 2⁴⁰]` holds no elements yet its strides overflow, so such shapes are refused
/// when the node is planned rather than trapping when it runs.
protocol StrideCheckedOperator: Operator {
    /// The output facts, before the stride check.
    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact]
}

extension StrideCheckedOperator {
    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        for case let input? in inputs { try LayoutSupport.checkStrides(input.shape) }
        let outputs = try uncheckedOutputFacts(inputs)
        for output in outputs { try LayoutSupport.checkStrides(output.shape) }
        return outputs
    }
}

/// Limits on tensors an operator creates from numbers in the model rather than from its inputs.
public enum GeneratedTensorLimits {
    /// The largest output, in bytes, `ConstantOfShape`, `Range`, `Expand` and `Tile` may plan.
    /// Default 4 GiB. Set it before planning models; it is read without synchronization.
    nonisolated(unsafe) public static var maximumByteCount: Int = 4 << 30

    static func check(_ shape: Shape, dtype: DType, operator name: String) throws(OperatorError) {
        let count = shape.elementCount
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, bytes <= maximumByteCount else {
            throw .invalidShape(
                "\(name) output \(shape) of \(dtype) needs \(overflow ? "more than Int.max" : String(bytes)) bytes, "
                    + "over the limit of \(maximumByteCount) (GeneratedTensorLimits.maximumByteCount)")
        }
    }
}

/// `Flatten`: reshapes to 2-D, `[d₀ · … · d_{axis−1}, d_axis · … · d_{r−1}]`.
struct Flatten: StrideCheckedOperator {
    let axis: Int

    init(node: Node) throws(OperatorError) {
        axis = try node.int("axis", default: 1)
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let input = try inputs.required(0)
        let rank = input.shape.rank
        guard axis >= -rank, axis <= rank else {
            throw .invalidAttribute("axis", reason: "\(axis) is outside [\(-rank), \(rank)] for rank \(rank)")
        }
        let split = axis < 0 ? axis + rank : axis
        let outer = input.shape.dimensions[..<split].reduce(1, *)
        let inner = input.shape.dimensions[split...].reduce(1, *)
        return [ValueFact(dtype: input.dtype, shape: [outer, inner])]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        LayoutSupport.copyThrough(try inputs.required(0), to: outputs[0])
    }
}

/// `Reshape`: the target shape (input 1) must be constant; `0` copies the input dimension unless
/// `allowzero` is 1, and one `-1` is inferred.
struct Reshape: StrideCheckedOperator {
    let allowZero: Bool

    init(node: Node) throws(OperatorError) {
        allowZero = try node.int("allowzero", default: 0) != 0
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...2)
        let input = try inputs.required(0)
        guard let requested = try LayoutSupport.constantIntegers(inputs, 1) else { throw .missingInput(index: 1) }
        let shape = try Self.resolve(requested, input: input.shape, allowZero: allowZero)
        return [ValueFact(dtype: input.dtype, shape: shape)]
    }

    /// The output shape for a requested `shape` input, per the ONNX rules.
    static func resolve(_ requested: [Int], input: Shape, allowZero: Bool) throws(OperatorError) -> Shape {
        var dimensions: [Int] = []
        var inferred: Int?
        for (index, value) in requested.enumerated() {
            switch value {
            case -1:
                guard inferred == nil else { throw .invalidShape("Reshape shape \(requested) has more than one -1") }
                inferred = index
                dimensions.append(1)
            case 0 where !allowZero:
                guard index < input.rank else {
                    throw .invalidShape(
                        "Reshape shape \(requested): 0 at index \(index) but the input \(input) has rank \(input.rank)")
                }
                dimensions.append(input[index])
            case ..<0:
                throw .invalidShape("Reshape shape \(requested) has negative dimension \(value)")
            default:
                dimensions.append(value)
            }
        }
        if allowZero, inferred != nil, requested.contains(0) {
            throw .invalidShape("Reshape shape \(requested) has both 0 and -1 with allowzero=1")
        }
        let inputCount = input.elementCount
        var known = 1
        for value in dimensions { known = try LayoutSupport.product(known, value, "Reshape shape \(requested)") }
        if let inferred {
            guard known != 0, inputCount % known == 0 else {
                throw .invalidShape(
                    "Reshape cannot infer -1 in \(requested) for input \(input) (\(inputCount) elements)")
            }
            dimensions[inferred] = inputCount / known
        } else {
            guard known == inputCount else {
                throw .invalidShape(
                    "Reshape of \(input) (\(inputCount) elements) to \(dimensions) (\(known) elements)")
            }
        }
        return try LayoutSupport.shape(dimensions)
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        LayoutSupport.copyThrough(try inputs.required(0), to: outputs[0])
    }
}

/// `Squeeze`: removes size-1 axes, the listed ones (input 1 from opset 13, attribute `axes`
/// before) or all of them.
struct Squeeze: StrideCheckedOperator {
    let attributeAxes: [Int]?

    init(node: Node) throws(OperatorError) {
        attributeAxes = try node.ints("axes")
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...2)
        let input = try inputs.required(0)
        let dimensions = input.shape.dimensions
        let requested = try LayoutSupport.constantIntegers(inputs, 1) ?? attributeAxes
        let output: [Int]
        if let requested {
            let axes = try LayoutSupport.distinctAxes(requested, rank: dimensions.count)
            for axis in axes where dimensions[axis] != 1 {
                throw .invalidShape("Squeeze axis \(axis) of \(input.shape) has size \(dimensions[axis]), not 1")
            }
            output = dimensions.indices.filter { !axes.contains($0) }.map { dimensions[$0] }
        } else {
            output = dimensions.filter { $0 != 1 }
        }
        return [ValueFact(dtype: input.dtype, shape: Shape(output))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        LayoutSupport.copyThrough(try inputs.required(0), to: outputs[0])
    }
}

/// `Unsqueeze`: inserts size-1 axes at the listed output positions (input 1 from opset 13,
/// attribute `axes` before).
struct Unsqueeze: StrideCheckedOperator {
    let attributeAxes: [Int]?

    init(node: Node) throws(OperatorError) {
        attributeAxes = try node.ints("axes")
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...2)
        let input = try inputs.required(0)
        guard let requested = try LayoutSupport.constantIntegers(inputs, 1) ?? attributeAxes else {
            throw .missingAttribute("axes")
        }
        let rank = input.shape.rank + requested.count
        let axes = try LayoutSupport.distinctAxes(requested, rank: rank)
        var remaining = input.shape.dimensions.makeIterator()
        let output = (0..<rank).map { axes.contains($0) ? 1 : (remaining.next() ?? 1) }
        return [ValueFact(dtype: input.dtype, shape: Shape(output))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        LayoutSupport.copyThrough(try inputs.required(0), to: outputs[0])
    }
}

/// `Dropout` at inference: the output is the input; the optional mask is all true. A constant
/// `training_mode` of true is refused (training-time dropout is random).
struct Dropout: Operator {
    let outputCount: Int

    init(node: Node) throws(OperatorError) {
        outputCount = max(1, node.outputs.count)
        guard outputCount <= 2 else {
            throw .invalidAttribute("outputs", reason: "Dropout has at most 2 outputs, node has \(outputCount)")
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...3)
        let input = try inputs.required(0)
        if let training = inputs.optional(2) {
            guard let constant = training.constant, constant.dtype == .bool, constant.elementCount == 1 else {
                throw .notConstant(input: 2)
            }
            if constant.withUnsafeBufferPointer(as: Bool.self, { $0[0] }) {
                throw .unsupported("Dropout with training_mode = true (random masks) is not an inference operation")
            }
        }
        let output = ValueFact(dtype: input.dtype, shape: input.shape)
        return outputCount == 2 ? [output, ValueFact(dtype: .bool, shape: input.shape)] : [output]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        LayoutSupport.copyThrough(try inputs.required(0), to: outputs[0])
        if outputs.count > 1 {
            var value = true
            Layout.fill(outputs[1].rawPointer, count: outputs[1].elementCount, elementByteSize: 1, value: &value)
        }
    }
}

/// `Shape`: the input's dimensions `[start, end)` (opset 15 attributes) as int64; known at plan time.
struct ShapeOf: Operator {
    let start: Int
    let end: Int?

    init(node: Node) throws(OperatorError) {
        start = try node.int("start", default: 0)
        end = try node.int("end")
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let dimensions = try inputs.required(0).shape.dimensions
        let rank = dimensions.count
        func clamp(_ value: Int) -> Int { Swift.min(Swift.max(value < 0 ? value + rank : value, 0), rank) }
        let lower = clamp(start)
        let upper = Swift.max(lower, clamp(end ?? rank))
        let values = dimensions[lower..<upper].map { Int64($0) }
        return [ValueFact(constant: Tensor(shape: [values.count], scalars: values))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let facts = try outputFacts([
            ValueFact(dtype: try inputs.required(0).dtype, shape: try inputs.required(0).shape)
        ])
        if let constant = facts[0].constant { LayoutSupport.copyThrough(constant, to: outputs[0]) }
    }
}

/// `Size`: the input's element count as an int64 scalar; known at plan time.
struct SizeOf: Operator {
    init(node: Node) throws(OperatorError) {}

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let count = Int64(try inputs.required(0).shape.elementCount)
        return [ValueFact(constant: Tensor(scalar: count))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        outputs[0].rawPointer.storeBytes(of: Int64(try inputs.required(0).elementCount), as: Int64.self)
    }
}
