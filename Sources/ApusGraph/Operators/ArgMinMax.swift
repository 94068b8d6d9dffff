import ApusOps
import ApusTensor

/// Calls `body` with the Swift type of a comparable dtype, or throws `.unsupported`.
private func withComparableType(
    _ dtype: DType, _ name: String, _ body: (any (Comparable & TensorScalar).Type) throws(OperatorError) -> Void
) throws(OperatorError) {
    switch dtype {
    case .float32: try body(Float.self)
    case .float16: try body(Float16.self)
    case .int64: try body(Int64.self)
    case .int32: try body(Int32.self)
    case .int8: try body(Int8.self)
    case .uint8: try body(UInt8.self)
    case .bool: throw .unsupported("\(name) of bool")
    }
}

/// `[outer, axis, inner]` sizes of a shape split at `axis`.
private func split(_ shape: Shape, axis: Int) -> (outer: Int, axis: Int, inner: Int) {
    (
        shape.dimensions[..<axis].reduce(1, *), shape[axis],
        shape.dimensions[(axis + 1)...].reduce(1, *)
    )
}

/// `ArgMax` / `ArgMin`: int64 indices of the extreme element along `axis` (`keepdims`,
/// `select_last_index` for ties).
struct ArgExtremum: Operator {
    let largest: Bool
    let axis: Int
    let keepDimensions: Bool
    let lastIndex: Bool

    init(node: Node, largest: Bool) throws(OperatorError) {
        self.largest = largest
        axis = try node.int("axis", default: 0)
        keepDimensions = try node.int("keepdims", default: 1) != 0
        lastIndex = try node.int("select_last_index", default: 0) != 0
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let x = try inputs.required(0)
        try withComparableType(x.dtype, largest ? "ArgMax" : "ArgMin") { _ throws(OperatorError) in }
        let axis = try LayoutSupport.axis(self.axis, rank: x.shape.rank)
        guard x.shape[axis] > 0 else {
            throw .invalidShape("\(largest ? "ArgMax" : "ArgMin") over empty axis \(axis) of \(x.shape)")
        }
        var dimensions = x.shape.dimensions
        if keepDimensions { dimensions[axis] = 1 } else { dimensions.remove(at: axis) }
        return [ValueFact(dtype: .int64, shape: Shape(dimensions))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let axis = try LayoutSupport.axis(self.axis, rank: x.shape.rank)
        let (outer, count, inner) = split(x.shape, axis: axis)
        let output = outputs[0].pointer(as: Int64.self)
        try withComparableType(x.dtype, "ArgMax") { type throws(OperatorError) in
            func typed<T: Comparable & TensorScalar>(_: T.Type) {
                IndexKernels.argExtremum(
                    x.pointer(as: T.self), outerCount: outer, axisCount: count, innerCount: inner, output: output,
                    largest: largest, lastIndex: lastIndex)
            }
            typed(type)
        }
    }
}

/// `TopK`: the `k` largest (or smallest) elements along `axis` and their int64 indices, sorted,
/// equal values in index order. `k` (input 1 from opset 10, else an attribute) must be constant.
struct TopK: Operator {
    let axis: Int
    let largest: Bool
    let attributeK: Int?

    init(node: Node, opset: Int) throws(OperatorError) {
        axis = try node.int("axis", default: -1)
        largest = try node.int("largest", default: 1) != 0
        attributeK = opset < 10 ? try node.int("k") : nil
        if opset < 10, attributeK == nil { throw .missingAttribute("k") }
    }

    private func k(_ inputs: [ValueFact?]) throws(OperatorError) -> Int {
        if let attributeK { return attributeK }
        let fact = try inputs.required(1)
        guard let constant = fact.constant else { throw .notConstant(input: 1) }
        let values = try LayoutSupport.integers(constant, input: 1)
        guard values.count == 1 else { throw .invalidShape("TopK k must hold one value, has \(values.count)") }
        return values[0]
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(attributeK == nil ? 2...2 : 1...1)
        let x = try inputs.required(0)
        try withComparableType(x.dtype, "TopK") { _ throws(OperatorError) in }
        let axis = try LayoutSupport.axis(self.axis, rank: x.shape.rank)
        let k = try k(inputs)
        guard k >= 0, k <= x.shape[axis] else {
            throw .outOfRange("TopK k = \(k) is outside [0, \(x.shape[axis])] for axis \(axis) of \(x.shape)")
        }
        var dimensions = x.shape.dimensions
        dimensions[axis] = k
        return [
            ValueFact(dtype: x.dtype, shape: Shape(dimensions)), ValueFact(dtype: .int64, shape: Shape(dimensions)),
        ]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let axis = try LayoutSupport.axis(self.axis, rank: x.shape.rank)
        let (outer, count, inner) = split(x.shape, axis: axis)
        let k = outputs[0].shape[axis]
        try withComparableType(x.dtype, "TopK") { type throws(OperatorError) in
            func typed<T: Comparable & TensorScalar>(_: T.Type) {
                IndexKernels.topK(
                    x.pointer(as: T.self), outerCount: outer, axisCount: count, innerCount: inner, k: k,
                    largest: largest, values: outputs[0].pointer(as: T.self),
                    indices: outputs[1].pointer(as: Int64.self))
            }
            typed(type)
        }
    }
}

/// `Hardmax`: 1 at the first maximum along `axis`, 0 elsewhere. Before opset 13 the input is
/// viewed as 2-D `[d₀…d_{axis−1}, d_axis…]` and the maximum is over the whole second dimension.
struct Hardmax: Operator {
    let axis: Int
    let flattens: Bool

    init(node: Node, opset: Int) throws(OperatorError) {
        flattens = opset < 13
        axis = try node.int("axis", default: flattens ? 1 : -1)
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let x = try inputs.required(0)
        guard x.dtype == .float32 else { throw .unsupported("Hardmax of \(x.dtype) (float32 only)") }
        _ = try LayoutSupport.axis(axis, rank: x.shape.rank)
        return [x]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        guard x.elementCount > 0 else { return }
        let axis = try LayoutSupport.axis(self.axis, rank: x.shape.rank)
        var (outer, count, inner) = split(x.shape, axis: axis)
        if flattens { (count, inner) = (count * inner, 1) }
        var indices = [Int64](repeating: 0, count: outer * inner)
        IndexKernels.argExtremum(
            x.pointer(as: Float.self), outerCount: outer, axisCount: count, innerCount: inner, output: &indices,
            largest: true, lastIndex: false)
        let output = outputs[0].pointer(as: Float.self)
        output.update(repeating: 0, count: x.elementCount)
        for o in 0..<outer {
            for i in 0..<inner { output[(o * count + Int(indices[o * inner + i])) * inner + i] = 1 }
        }
    }
}
