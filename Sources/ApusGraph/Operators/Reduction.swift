import ApusOps
import ApusTensor

/// `ReduceSum`, `ReduceMean`, `ReduceMax`, `ReduceMin`, `ReduceProd`, `ReduceSumSquare`,
/// `ReduceL1`, `ReduceL2` on float32.
///
/// `axes` is an attribute before the opset where it became an optional input (13 for
/// `ReduceSum`, 18 for the others); as an input it must be a constant at plan time. Empty `axes`
/// reduces every axis, unless `noop_with_empty_axes` is 1, which makes the operator an identity.
struct Reduce: Operator {
    let operation: ReduceOperation
    let keepDimensions: Bool
    let noopWithEmptyAxes: Bool
    /// The `axes` attribute, or `nil` when axes come from input 1.
    let attributeAxes: [Int]?
    let axesFromInput: Bool

    init(node: Node, opset: Int, operation: ReduceOperation) throws(OperatorError) {
        self.operation = operation
        keepDimensions = try node.int("keepdims", default: 1) != 0
        noopWithEmptyAxes = try node.int("noop_with_empty_axes", default: 0) != 0
        axesFromInput = opset >= (operation == .sum ? 13 : 18)
        attributeAxes = axesFromInput ? nil : try node.ints("axes")
    }

    /// The sorted, distinct axes to reduce (empty means the operator copies its input).
    func axes(_ inputs: [ValueFact?], rank: Int) throws(OperatorError) -> [Int] {
        var given = attributeAxes ?? []
        if axesFromInput, let axesFact = inputs.optional(1) {
            guard let constant = axesFact.constant else { throw .notConstant(input: 1) }
            guard constant.dtype == .int64 else { throw .unsupportedDType(input: 1, constant.dtype) }
            given = constant.withUnsafeBufferPointer(as: Int64.self) { $0.map { Int($0) } }
        }
        if given.isEmpty { return noopWithEmptyAxes ? [] : Array(0..<rank) }
        var normalized = Set<Int>()
        for axis in given {
            let value = axis < 0 ? axis + rank : axis
            guard value >= 0, value < rank else {
                throw .invalidAttribute("axes", reason: "\(axis) is out of range for rank \(rank)")
            }
            normalized.insert(value)
        }
        return normalized.sorted()
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...2)
        try requireFloat32(inputs, [0])
        let x = try inputs.required(0)
        let axes = try axes(inputs, rank: x.shape.rank)
        var dims = [Int]()
        for (axis, dimension) in x.shape.dimensions.enumerated() {
            if !axes.contains(axis) {
                dims.append(dimension)
            } else if keepDimensions {
                dims.append(1)
            }
        }
        return [ValueFact(dtype: .float32, shape: Shape(dims))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let facts: [ValueFact?] = [
            ValueFact(dtype: x.dtype, shape: x.shape), inputs.optional(1).map { ValueFact(constant: $0) },
        ]
        let axes = try axes(facts, rank: x.shape.rank)
        if axes.isEmpty {
            outputs[0].rawPointer.copyMemory(from: x.rawPointer, byteCount: x.byteCount)
            return
        }
        reduceFloat32(
            operation, x.pointer(as: Float.self), dimensions: x.shape.dimensions, axes: axes,
            output: outputs[0].pointer(as: Float.self), context: context)
    }
}
