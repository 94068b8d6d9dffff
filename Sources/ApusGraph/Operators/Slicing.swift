import ApusOps
import ApusTensor

/// `Concat`: joins inputs of one dtype along `axis` (negative counts from the end); all other
/// dimensions must agree. Inputs may be empty along the axis.
struct Concat: StrideCheckedOperator {
    let axis: Int

    init(node: Node) throws(OperatorError) {
        guard let axis = try node.int("axis") else { throw .missingAttribute("axis") }
        self.axis = axis
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        guard !inputs.isEmpty else { throw .inputCount(expected: 1...Int.max, actual: 0) }
        let first = try inputs.required(0)
        let rank = first.shape.rank
        guard rank > 0 else { throw .invalidShape("Concat of scalars (rank 0)") }
        let axis = try LayoutSupport.axis(self.axis, rank: rank)
        var dimensions = first.shape.dimensions
        dimensions[axis] = 0
        for index in inputs.indices {
            let fact = try inputs.required(index)
            guard fact.dtype == first.dtype else {
                throw .dtypeMismatch(input: index, expected: first.dtype, actual: fact.dtype)
            }
            guard fact.shape.rank == rank,
                fact.shape.indices.allSatisfy({ $0 == axis || fact.shape[$0] == first.shape[$0] })
            else {
                throw .invalidShape(
                    "Concat along axis \(axis): input \(index) \(fact.shape) does not match input 0 \(first.shape)")
            }
            let (sum, overflow) = dimensions[axis].addingReportingOverflow(fact.shape[axis])
            guard !overflow else { throw .invalidShape("Concat along axis \(axis): total size overflows") }
            dimensions[axis] = sum
        }
        return [ValueFact(dtype: first.dtype, shape: try LayoutSupport.shape(dimensions))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let output = outputs[0]
        let axis = try LayoutSupport.axis(self.axis, rank: output.shape.rank)
        let outer = output.shape.dimensions[..<axis].reduce(1, *)
        let innerBytes = output.shape.dimensions[(axis + 1)...].reduce(1, *) * output.dtype.byteSize
        let outputRowBytes = output.shape[axis] * innerBytes
        var offset = 0
        for index in inputs.indices {
            let input = try inputs.required(index)
            let blockBytes = input.shape[axis] * innerBytes
            Layout.copyBlocks(
                source: input.rawPointer, sourceStride: blockBytes, destination: output.rawPointer + offset,
                destinationStride: outputRowBytes, blockByteCount: blockBytes, blockCount: outer, context: context)
            offset += blockBytes
        }
    }
}

/// `Split`: cuts the input along `axis` into the node's outputs, by the `split` sizes (input 1
/// from opset 13, attribute before), or into `num_outputs` (opset 18) or output-count parts of
/// equal size with a smaller last part when the size does not divide evenly.
struct Split: StrideCheckedOperator {
    let axis: Int
    let attributeSplit: [Int]?
    let outputCount: Int

    init(node: Node) throws(OperatorError) {
        axis = try node.int("axis", default: 0)
        attributeSplit = try node.ints("split")
        outputCount = node.outputs.count
        guard outputCount >= 1 else { throw .invalidAttribute("outputs", reason: "Split needs at least one output") }
        if let parts = try node.int("num_outputs"), parts != outputCount {
            throw .invalidAttribute("num_outputs", reason: "\(parts) differs from the node's \(outputCount) outputs")
        }
    }

    func sizes(dimension: Int, split: [Int]?) throws(OperatorError) -> [Int] {
        if let split {
            guard split.count == outputCount, split.allSatisfy({ $0 >= 0 }),
                split.reduce(0, { $0 &+ $1 }) == dimension
            else {
                throw .invalidShape(
                    "Split sizes \(split) must be \(outputCount) non-negative sizes summing to \(dimension)")
            }
            return split
        }
        if dimension % outputCount == 0 { return Array(repeating: dimension / outputCount, count: outputCount) }
        let chunk = dimension / outputCount + 1
        let last = dimension - chunk * (outputCount - 1)
        guard last >= 0 else {
            throw .invalidShape(
                "Split of size \(dimension) into \(outputCount) parts of \(chunk) leaves \(last) for the last")
        }
        return Array(repeating: chunk, count: outputCount - 1) + [last]
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...2)
        let input = try inputs.required(0)
        let axis = try LayoutSupport.axis(self.axis, rank: input.shape.rank)
        let split = try LayoutSupport.constantIntegers(inputs, 1) ?? attributeSplit
        return try sizes(dimension: input.shape[axis], split: split).map { size in
            var shape = input.shape
            shape[axis] = size
            return ValueFact(dtype: input.dtype, shape: shape)
        }
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let input = try inputs.required(0)
        let axis = try LayoutSupport.axis(self.axis, rank: input.shape.rank)
        let outer = input.shape.dimensions[..<axis].reduce(1, *)
        let innerBytes = input.shape.dimensions[(axis + 1)...].reduce(1, *) * input.dtype.byteSize
        let inputRowBytes = input.shape[axis] * innerBytes
        var offset = 0
        for output in outputs {
            let blockBytes = output.shape[axis] * innerBytes
            Layout.copyBlocks(
                source: input.rawPointer + offset, sourceStride: inputRowBytes, destination: output.rawPointer,
                destinationStride: blockBytes, blockByteCount: blockBytes, blockCount: outer, context: context)
            offset += blockBytes
        }
    }
}

/// `Slice`: `starts`, `ends`, `axes` and `steps` are constant inputs (opset 10+) or attributes
/// (opset 1–9), clamped as the ONNX specification says, negative steps included.
struct SliceOperator: StrideCheckedOperator {
    let attributeStarts: [Int]?
    let attributeEnds: [Int]?
    let attributeAxes: [Int]?
    private var copy: LayoutCopy?

    init(node: Node) throws(OperatorError) {
        attributeStarts = try node.ints("starts")
        attributeEnds = try node.ints("ends")
        attributeAxes = try node.ints("axes")
    }

    /// Per input axis: the first index read and the step between indices; and the output shape.
    struct Plan {
        var starts: [Int]
        var steps: [Int]
        var shape: [Int]
    }

    static func plan(
        shape: Shape, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
    ) throws(OperatorError) -> Plan {
        let rank = shape.rank
        guard ends.count == starts.count else {
            throw .invalidShape("Slice starts \(starts) and ends \(ends) differ in length")
        }
        let axes = try LayoutSupport.distinctAxes(axes ?? Array(0..<starts.count), rank: rank)
        guard axes.count == starts.count else {
            throw .invalidShape("Slice axes \(axes) and starts \(starts) differ in length")
        }
        let steps = steps ?? Array(repeating: 1, count: starts.count)
        guard steps.count == starts.count else {
            throw .invalidShape("Slice steps \(steps) and starts \(starts) differ in length")
        }
        var plan = Plan(
            starts: Array(repeating: 0, count: rank), steps: Array(repeating: 1, count: rank), shape: shape.dimensions)
        for (index, axis) in axes.enumerated() {
            let dimension = shape[axis]
            let step = steps[index]
            guard step != 0 else { throw .invalidShape("Slice step is 0 on axis \(axis)") }
            var start = starts[index]
            var end = ends[index]
            if start < 0 { start += dimension }
            if end < 0 { end += dimension }
            let count: Int
            if step > 0 {
                start = Swift.min(Swift.max(start, 0), dimension)
                end = Swift.min(Swift.max(end, 0), dimension)
                count = end > start ? (end - start - 1) / step + 1 : 0
            } else {
                start = Swift.min(Swift.max(start, 0), dimension - 1)
                end = Swift.min(Swift.max(end, -1), dimension - 1)
                let magnitude = step == Int.min ? Int.max : -step
                count = start > end ? (start - end - 1) / magnitude + 1 : 0
            }
            plan.shape[axis] = count
            plan.starts[axis] = count > 0 ? start : 0
            plan.steps[axis] = count > 1 ? step : 1
        }
        return plan
    }

    private func plan(shape: Shape, integers: (Int) throws(OperatorError) -> [Int]?) throws(OperatorError) -> Plan {
        guard let starts = try integers(1) ?? attributeStarts else { throw .missingInput(index: 1) }
        guard let ends = try integers(2) ?? attributeEnds else { throw .missingInput(index: 2) }
        return try Self.plan(
            shape: shape, starts: starts, ends: ends, axes: try integers(3) ?? attributeAxes, steps: try integers(4))
    }

    private static func copy(for plan: Plan, inputShape: Shape, elementByteSize: Int) -> LayoutCopy {
        let strides = inputShape.strides
        let base = zip(plan.starts, strides).reduce(0) { $0 + $1.0 * $1.1 }
        return LayoutCopy(
            shape: plan.shape, sourceStrides: zip(plan.steps, strides).map { $0 * $1 }, sourceBase: base,
            elementByteSize: elementByteSize)
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...5)
        let input = try inputs.required(0)
        let plan = try plan(shape: input.shape) { index throws(OperatorError) in
            try LayoutSupport.constantIntegers(inputs, index)
        }
        return [ValueFact(dtype: input.dtype, shape: Shape(plan.shape))]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        let input = try inputs.required(0)
        let plan = try plan(shape: input.shape) { index throws(OperatorError) in
            try LayoutSupport.constantIntegers(inputs, index)
        }
        var planned = self
        planned.copy = Self.copy(for: plan, inputShape: input.shape, elementByteSize: input.dtype.byteSize)
        return planned
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let input = try inputs.required(0)
        let copy: LayoutCopy
        if let planned = self.copy {
            copy = planned
        } else {
            let plan = try plan(shape: input.shape) { index throws(OperatorError) in
                try LayoutSupport.runIntegers(inputs, index)
            }
            copy = Self.copy(for: plan, inputShape: input.shape, elementByteSize: input.dtype.byteSize)
        }
        copy.run(source: input.rawPointer, destination: outputs[0].rawPointer, context: context)
    }
}
