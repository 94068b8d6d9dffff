import ApusOps
import ApusTensor

/// Checks int32/int64 indices against an axis of `dimension` elements; negative indices count
/// from the end. The error names the first bad index, its position and the dimension.
private func validateIndices(_ indices: Tensor, dimension: Int, axis: Int, input: Int) throws(OperatorError) {
    func check<Index: BinaryInteger>(_ buffer: UnsafeBufferPointer<Index>) -> (position: Int, value: Int64)? {
        for (position, index) in buffer.enumerated() {
            let value = Int64(index)
            if value < -Int64(dimension) || value >= Int64(dimension) { return (position, value) }
        }
        return nil
    }
    let bad: (position: Int, value: Int64)?
    switch indices.dtype {
    case .int64: bad = indices.withUnsafeBufferPointer(as: Int64.self, check)
    case .int32: bad = indices.withUnsafeBufferPointer(as: Int32.self, check)
    default: throw .unsupportedDType(input: input, indices.dtype)
    }
    if let bad {
        throw .outOfRange(
            "index \(bad.value) at position \(bad.position) is outside [\(-dimension), \(dimension - 1)] "
                + "for axis \(axis) of size \(dimension)")
    }
}

/// `Gather`: picks slices of `data` along `axis` by `indices` (int32 or int64, negative counts
/// from the end). The output shape is `data[..<axis] + indices.shape + data[(axis+1)...]`.
/// Out-of-range indices are an error, at plan time when the indices are constant.
struct Gather: StrideCheckedOperator {
    let axis: Int

    init(node: Node) throws(OperatorError) {
        axis = try node.int("axis", default: 0)
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...2)
        let data = try inputs.required(0)
        let indices = try inputs.required(1)
        guard indices.dtype == .int64 || indices.dtype == .int32 else {
            throw .unsupportedDType(input: 1, indices.dtype)
        }
        let axis = try LayoutSupport.axis(self.axis, rank: data.shape.rank)
        if let constant = indices.constant {
            try validateIndices(constant, dimension: data.shape[axis], axis: axis, input: 1)
        }
        let dimensions =
            Array(data.shape.dimensions[..<axis]) + indices.shape.dimensions + data.shape.dimensions[(axis + 1)...]
        return [ValueFact(dtype: data.dtype, shape: try LayoutSupport.shape(dimensions))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let data = try inputs.required(0)
        let indices = try inputs.required(1)
        let axis = try LayoutSupport.axis(self.axis, rank: data.shape.rank)
        let dimension = data.shape[axis]
        try validateIndices(indices, dimension: dimension, axis: axis, input: 1)
        let outer = data.shape.dimensions[..<axis].reduce(1, *)
        let innerBytes = data.shape.dimensions[(axis + 1)...].reduce(1, *) * data.dtype.byteSize
        let output = outputs[0].rawPointer
        switch indices.dtype {
        case .int64:
            indices.withUnsafeBufferPointer(as: Int64.self) { buffer in
                Layout.gather(
                    source: data.rawPointer, destination: output, outerCount: outer, axisCount: dimension,
                    innerByteCount: innerBytes, indices: buffer, context: context)
            }
        default:
            indices.withUnsafeBufferPointer(as: Int32.self) { buffer in
                Layout.gather(
                    source: data.rawPointer, destination: output, outerCount: outer, axisCount: dimension,
                    innerByteCount: innerBytes, indices: buffer, context: context)
            }
        }
    }
}

/// `GatherElements`: `output[i₀…iₙ] = data[i₀…index…iₙ]` with `index = indices[i₀…iₙ]` replacing
/// the coordinate on `axis`. `indices` has the data's rank and no larger dimensions off the axis.
struct GatherElements: StrideCheckedOperator {
    let axis: Int

    init(node: Node) throws(OperatorError) {
        axis = try node.int("axis", default: 0)
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...2)
        let data = try inputs.required(0)
        let indices = try inputs.required(1)
        guard indices.dtype == .int64 || indices.dtype == .int32 else {
            throw .unsupportedDType(input: 1, indices.dtype)
        }
        let axis = try LayoutSupport.axis(self.axis, rank: data.shape.rank)
        guard indices.shape.rank == data.shape.rank,
            data.shape.indices.allSatisfy({ $0 == axis || indices.shape[$0] <= data.shape[$0] })
        else {
            throw .invalidShape("GatherElements indices \(indices.shape) do not fit data \(data.shape) on axis \(axis)")
        }
        if let constant = indices.constant {
            try validateIndices(constant, dimension: data.shape[axis], axis: axis, input: 1)
        }
        return [ValueFact(dtype: data.dtype, shape: indices.shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let data = try inputs.required(0)
        let indices = try inputs.required(1)
        let axis = try LayoutSupport.axis(self.axis, rank: data.shape.rank)
        let dimension = data.shape[axis]
        try validateIndices(indices, dimension: dimension, axis: axis, input: 1)
        let values = try LayoutSupport.integers(indices, input: 1)
        // The index replaces the coordinate on `axis`; every other coordinate maps through the data strides.
        let shape = indices.shape.dimensions
        let dataStrides = data.shape.strides
        let outputStrides = LayoutCopy.rowMajorStrides(shape)
        let size = data.dtype.byteSize
        let source = data.rawPointer
        let destination = outputs[0].rawPointer
        for (position, value) in values.enumerated() {
            var element = (value < 0 ? value + dimension : value) * dataStrides[axis]
            for k in shape.indices where k != axis {
                element += (position / outputStrides[k]) % shape[k] * dataStrides[k]
            }
            (destination + position * size).copyMemory(from: source + element * size, byteCount: size)
        }
    }
}
