import ApusOps
import ApusTensor

/// Normalizes `axis` (negative counts from the end) into `0..<rank`, or throws naming it.
func normalizedAxis(_ axis: Int, rank: Int, name: String = "axis") throws(OperatorError) -> Int {
    let normalized = axis < 0 ? axis + rank : axis
    guard normalized >= 0, normalized < max(rank, 1) else {
        throw .invalidAttribute(name, reason: "\(axis) is out of range for rank \(rank)")
    }
    return normalized
}

/// Checks that every input in `indices` is float32.
func requireFloat32(_ inputs: [ValueFact?], _ indices: [Int]) throws(OperatorError) {
    for index in indices {
        guard let fact = inputs.optional(index) else { continue }
        guard fact.dtype == .float32 else { throw .unsupportedDType(input: index, fact.dtype) }
    }
}

/// `Softmax` / `LogSoftmax`. Opset ≥ 13 normalizes along `axis` (default −1); earlier opsets
/// flatten the input to 2-D at `axis` (default 1) and normalize each row.
struct Softmax: Operator {
    let axis: Int
    let flattens: Bool
    let logarithm: Bool

    init(node: Node, opset: Int, logarithm: Bool) throws(OperatorError) {
        flattens = opset < 13
        axis = try node.int("axis", default: flattens ? 1 : -1)
        self.logarithm = logarithm
    }

    /// `(outer, axisCount, inner)` for an input shape.
    func extents(_ shape: Shape) throws(OperatorError) -> (Int, Int, Int) {
        let dims = shape.dimensions
        if dims.isEmpty { return (1, 1, 1) }
        let axis = try normalizedAxis(axis, rank: dims.count)
        let outer = dims[..<axis].reduce(1, *)
        if flattens { return (outer, dims[axis...].reduce(1, *), 1) }
        return (outer, dims[axis], dims[(axis + 1)...].reduce(1, *))
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        try requireFloat32(inputs, [0])
        let x = try inputs.required(0)
        _ = try extents(x.shape)
        return [x.withoutConstant]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let (outer, axisCount, inner) = try extents(x.shape)
        softmaxFloat32(
            x.pointer(as: Float.self), output: outputs[0].pointer(as: Float.self), outer: outer,
            axisCount: axisCount, inner: inner, logarithm: logarithm, context: context)
    }
}

/// `BatchNormalization` in inference mode: `y = (x − mean) / √(var + ε) · scale + B`, folded into
/// one scale and shift per channel (at plan time when the statistics are constants).
struct BatchNormalization: Operator {
    let epsilon: Float
    /// Folded `(scale, shift)`, set by ``specialized(for:threadCount:)`` when inputs 1–4 are constants.
    var folded: (scale: [Float], shift: [Float])?

    init(node: Node) throws(OperatorError) {
        epsilon = try node.float("epsilon", default: 1e-5)
        if try node.int("training_mode", default: 0) != 0 {
            throw .unsupported("BatchNormalization with training_mode=1")
        }
        if node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
            throw .unsupported("BatchNormalization running mean/variance outputs (training)")
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(5...5)
        try requireFloat32(inputs, [0, 1, 2, 3, 4])
        let x = try inputs.required(0)
        guard x.shape.rank >= 2 else { throw .invalidShape("BatchNormalization input \(x.shape) has rank < 2") }
        let channels = x.shape[1]
        for index in 1...4 {
            let parameter = try inputs.required(index)
            guard parameter.shape.dimensions == [channels] else {
                throw .invalidShape(
                    "input \(index) has shape \(parameter.shape), expected [\(channels)] for \(x.shape)")
            }
        }
        return [x.withoutConstant]
    }

    static func fold(_ scale: Tensor, _ bias: Tensor, _ mean: Tensor, _ variance: Tensor, epsilon: Float)
        -> (scale: [Float], shift: [Float])
    {
        let count = scale.elementCount
        var foldedScale = [Float](repeating: 0, count: count)
        var foldedShift = [Float](repeating: 0, count: count)
        let s = scale.pointer(as: Float.self)
        let b = bias.pointer(as: Float.self)
        let m = mean.pointer(as: Float.self)
        let v = variance.pointer(as: Float.self)
        for c in 0..<count {
            foldedScale[c] = s[c] / (v[c] + epsilon).squareRoot()
            foldedShift[c] = b[c] - m[c] * foldedScale[c]
        }
        return (foldedScale, foldedShift)
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        var result = self
        if let scale = inputs.optional(1)?.constant, let bias = inputs.optional(2)?.constant,
            let mean = inputs.optional(3)?.constant, let variance = inputs.optional(4)?.constant
        {
            result.folded = Self.fold(scale, bias, mean, variance, epsilon: epsilon)
        }
        return result
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let scale: [Float]
        let shift: [Float]
        if let folded {
            (scale, shift) = folded
        } else {
            (scale, shift) = Self.fold(
                try inputs.required(1), try inputs.required(2), try inputs.required(3), try inputs.required(4),
                epsilon: epsilon)
        }
        let dims = x.shape.dimensions
        scale.withUnsafeBufferPointer { scale in
            shift.withUnsafeBufferPointer { shift in
                guard let scale = scale.baseAddress, let shift = shift.baseAddress else { return }
                channelAffineFloat32(
                    x.pointer(as: Float.self), scale: scale, shift: shift,
                    output: outputs[0].pointer(as: Float.self), batch: dims[0], channels: dims[1],
                    spatial: dims[2...].reduce(1, *), context: context)
            }
        }
    }
}

/// `LayerNormalization` (opset 17): normalizes over the axes from `axis` to the end; `Scale` and
/// the optional `B` have the normalized shape (leading 1s allowed). The optional `Mean` and
/// `InvStdDev` outputs are computed when requested.
struct LayerNormalization: Operator {
    let axis: Int
    let epsilon: Float
    /// How many outputs the node declares (1 to 3: `Y`, `Mean`, `InvStdDev`).
    let outputCount: Int

    init(node: Node) throws(OperatorError) {
        axis = try node.int("axis", default: -1)
        outputCount = min(3, max(1, node.outputs.count))
        epsilon = try node.float("epsilon", default: 1e-5)
        let stashType = try node.int("stash_type", default: 1)
        guard stashType == 1 else {
            throw .unsupported("LayerNormalization stash_type \(stashType) (only 1, float32, is implemented)")
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...3)
        try requireFloat32(inputs, [0, 1, 2])
        let x = try inputs.required(0)
        let axis = try normalizedAxis(axis, rank: x.shape.rank)
        let normalized = Array(x.shape.dimensions[axis...])
        for index in 1...2 {
            guard let parameter = inputs.optional(index) else { continue }
            let dims = parameter.shape.dimensions
            let significant = Array(dims.drop(while: { $0 == 1 }))
            guard parameter.shape.elementCount == normalized.reduce(1, *), normalized.count >= dims.count,
                significant.elementsEqual(normalized.suffix(significant.count))
            else {
                throw .invalidShape(
                    "input \(index) has shape \(parameter.shape), expected \(normalized) for \(x.shape)")
            }
        }
        let statisticsShape = Shape(Array(x.shape.dimensions[..<axis]) + [Int](repeating: 1, count: normalized.count))
        let statistics = ValueFact(dtype: .float32, shape: statisticsShape)
        return Array([x.withoutConstant, statistics, statistics].prefix(outputCount))
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let scale = try inputs.required(1)
        let axis = try normalizedAxis(axis, rank: x.shape.rank)
        let rowLength = x.shape.dimensions[axis...].reduce(1, *)
        let rowCount = x.shape.dimensions[..<axis].reduce(1, *)
        layerNormalizationFloat32(
            x.pointer(as: Float.self), scale: scale.pointer(as: Float.self),
            bias: inputs.optional(2).map { UnsafePointer($0.pointer(as: Float.self)) },
            output: outputs[0].pointer(as: Float.self), rowCount: rowCount, rowLength: rowLength, epsilon: epsilon,
            meanOutput: outputs.count > 1 ? outputs[1].pointer(as: Float.self) : nil,
            inverseStdDevOutput: outputs.count > 2 ? outputs[2].pointer(as: Float.self) : nil, context: context)
    }
}

/// `InstanceNormalization`: each `(n, c)` slice normalized by its own statistics, then
/// `scale[c]`, `B[c]`.
struct InstanceNormalization: Operator {
    let epsilon: Float

    init(node: Node) throws(OperatorError) {
        epsilon = try node.float("epsilon", default: 1e-5)
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(3...3)
        try requireFloat32(inputs, [0, 1, 2])
        let x = try inputs.required(0)
        guard x.shape.rank >= 2 else { throw .invalidShape("InstanceNormalization input \(x.shape) has rank < 2") }
        for index in 1...2 {
            let parameter = try inputs.required(index)
            guard parameter.shape.dimensions == [x.shape[1]] else {
                throw .invalidShape("input \(index) has shape \(parameter.shape), expected [\(x.shape[1])]")
            }
        }
        return [x.withoutConstant]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let dims = x.shape.dimensions
        instanceNormalizationFloat32(
            x.pointer(as: Float.self), scale: try inputs.required(1).pointer(as: Float.self),
            bias: try inputs.required(2).pointer(as: Float.self), output: outputs[0].pointer(as: Float.self),
            batch: dims[0], channels: dims[1], spatial: dims[2...].reduce(1, *), epsilon: epsilon, context: context)
    }
}
