import ApusOps
import ApusTensor

/// How a scattered update combines with the value already there (`reduction`).
enum ScatterReduction: Sendable {
    case none, add, multiply, maximum, minimum

    init(node: Node) throws(OperatorError) {
        switch try node.string("reduction", default: "none") {
        case "none": self = .none
        case "add": self = .add
        case "mul": self = .multiply
        case "max": self = .maximum
        case "min": self = .minimum
        case let other: throw .invalidAttribute("reduction", reason: "unknown value '\(other)'")
        }
    }

    func combine<T: Numeric & Comparable>(_ old: T, _ new: T) -> T {
        switch self {
        case .none: new
        case .add: old + new
        case .multiply: old * new
        case .maximum: Swift.max(old, new)
        case .minimum: Swift.min(old, new)
        }
    }
}

/// `ScatterElements` (and `Scatter`-9): `output = data`, then for every position of `indices`,
/// the element at that position with the `axis` coordinate replaced by the index receives the
/// update (combined by `reduction`).
struct ScatterElements: Operator {
    let axis: Int
    let reduction: ScatterReduction

    init(node: Node) throws(OperatorError) {
        axis = try node.int("axis", default: 0)
        reduction = try ScatterReduction(node: node)
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(3...3)
        let data = try inputs.required(0)
        let indices = try inputs.required(1)
        let updates = try inputs.required(2)
        guard [.float32, .int64, .int32].contains(data.dtype) else {
            throw .unsupported("ScatterElements of \(data.dtype)")
        }
        guard updates.dtype == data.dtype else {
            throw .dtypeMismatch(input: 2, expected: data.dtype, actual: updates.dtype)
        }
        guard indices.dtype == .int64 || indices.dtype == .int32 else {
            throw .unsupportedDType(input: 1, indices.dtype)
        }
        let axis = try LayoutSupport.axis(self.axis, rank: data.shape.rank)
        guard indices.shape == updates.shape, indices.shape.rank == data.shape.rank,
            data.shape.indices.allSatisfy({ $0 == axis || indices.shape[$0] <= data.shape[$0] })
        else {
            throw .invalidShape(
                "ScatterElements indices \(indices.shape), updates \(updates.shape) do not fit data \(data.shape)")
        }
        return [ValueFact(dtype: data.dtype, shape: data.shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let data = try inputs.required(0)
        let indices = try LayoutSupport.integers(try inputs.required(1), input: 1)
        let updates = try inputs.required(2)
        let axis = try LayoutSupport.axis(self.axis, rank: data.shape.rank)
        let shape = updates.shape.dimensions
        let dataStrides = data.shape.strides
        let updateStrides = updates.shape.strides
        let dimension = data.shape[axis]
        var targets: [Int] = []
        targets.reserveCapacity(indices.count)
        for (position, value) in indices.enumerated() {
            guard value >= -dimension, value < dimension else {
                throw .outOfRange(
                    "ScatterElements index \(value) at \(position) outside axis \(axis) of size \(dimension)")
            }
            var target = (value < 0 ? value + dimension : value) * dataStrides[axis]
            for k in shape.indices where k != axis {
                target += (position / updateStrides[k]) % shape[k] * dataStrides[k]
            }
            targets.append(target)
        }
        try applyScatter(data, updates, outputs[0], reduction: reduction, targets: targets, sliceCount: 1)
    }
}

/// `ScatterND`: `output = data`, then `updates[i₀…, :]` goes to the slice `data[indices[i₀…]]`
/// (combined by `reduction`).
struct ScatterND: Operator {
    let reduction: ScatterReduction

    init(node: Node) throws(OperatorError) { reduction = try ScatterReduction(node: node) }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(3...3)
        let data = try inputs.required(0)
        let indices = try inputs.required(1)
        let updates = try inputs.required(2)
        guard [.float32, .int64, .int32].contains(data.dtype) else { throw .unsupported("ScatterND of \(data.dtype)") }
        guard updates.dtype == data.dtype else {
            throw .dtypeMismatch(input: 2, expected: data.dtype, actual: updates.dtype)
        }
        guard indices.dtype == .int64 else { throw .unsupportedDType(input: 1, indices.dtype) }
        let q = indices.shape.dimensions.last ?? 0
        guard indices.shape.rank >= 1, q <= data.shape.rank,
            updates.shape.dimensions
                == Array(indices.shape.dimensions.dropLast()) + Array(data.shape.dimensions[q...])
        else {
            throw .invalidShape(
                "ScatterND indices \(indices.shape), updates \(updates.shape) do not fit data \(data.shape)")
        }
        return [ValueFact(dtype: data.dtype, shape: data.shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let data = try inputs.required(0)
        let indexTensor = try inputs.required(1)
        let indices = try LayoutSupport.integers(indexTensor, input: 1)
        let updates = try inputs.required(2)
        let q = indexTensor.shape.dimensions.last ?? 0
        let strides = data.shape.strides
        let sliceCount = data.shape.dimensions[q...].reduce(1, *)
        var targets: [Int] = []
        for tuple in 0..<(q == 0 ? 0 : indices.count / q) {
            var target = 0
            for k in 0..<q {
                let value = indices[tuple * q + k]
                let dimension = data.shape[k]
                guard value >= -dimension, value < dimension else {
                    throw .outOfRange("ScatterND index \(value) outside axis \(k) of size \(dimension)")
                }
                target += (value < 0 ? value + dimension : value) * strides[k]
            }
            targets.append(target)
        }
        try applyScatter(data, updates, outputs[0], reduction: reduction, targets: targets, sliceCount: sliceCount)
    }
}

/// Copies `data` into `output` and applies `updates`, `sliceCount` consecutive elements per target.
private func applyScatter(
    _ data: Tensor, _ updates: Tensor, _ output: Tensor, reduction: ScatterReduction, targets: [Int], sliceCount: Int
) throws(OperatorError) {
    LayoutSupport.copyThrough(data, to: output)
    func typed<T: Numeric & Comparable & TensorScalar>(_: T.Type) {
        let destination = output.pointer(as: T.self)
        let source = updates.pointer(as: T.self)
        for (slot, target) in targets.enumerated() {
            for offset in 0..<sliceCount {
                destination[target + offset] = reduction.combine(
                    destination[target + offset], source[slot * sliceCount + offset])
            }
        }
    }
    switch data.dtype {
    case .float32: typed(Float.self)
    case .int64: typed(Int64.self)
    case .int32: typed(Int32.self)
    default: throw .unsupported("scatter of \(data.dtype)")
    }
}
