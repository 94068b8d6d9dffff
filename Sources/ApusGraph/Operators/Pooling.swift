import ApusOps
import ApusTensor

/// `MaxPool` (opsets 1–22) and `AveragePool` (opsets 1–22), 1-D and 2-D: kernel, strides, pads,
/// dilations, `ceil_mode`, `auto_pad`, and `count_include_pad` for averages. MaxPool's optional
/// second output (`Indices`) is not implemented.
struct Pool: Operator {
    let window: SpatialWindow
    let kernel: [Int]
    let ceilMode: Bool
    let kind: Pool2D.Kind
    /// Set by ``specialized(for:threadCount:)`` so that runs compute no sizes.
    var planned: Pool2DGeometry?

    init(node: Node, max: Bool) throws(OperatorError) {
        window = try SpatialWindow(node: node)
        guard let kernel = window.kernelShape else { throw .missingAttribute("kernel_shape") }
        self.kernel = kernel
        ceilMode = try node.int("ceil_mode", default: 0) != 0
        if max {
            if node.outputs.count >= 2 && !node.outputs[1].isEmpty {
                throw .unsupported("MaxPool's second output (Indices)")
            }
            kind = .max
        } else {
            kind = .average(countIncludePad: try node.int("count_include_pad", default: 0) != 0)
        }
    }

    func geometry(_ inputs: [ValueFact?]) throws(OperatorError) -> (Pool2DGeometry, Shape) {
        try inputs.checkCount(1...1)
        let x = try inputs.spatialInput(0, operation: kind == .max ? "MaxPool" : "AveragePool")
        let dims = x.shape.dimensions
        let spatial = Array(dims[2...])
        let axes = try window.resolve(input: spatial, kernel: kernel, ceilMode: ceilMode)
        let flat = SpatialWindow.Axis(kernel: 1, stride: 1, dilation: 1, padBegin: 0, padEnd: 0, output: 1)
        let (h, w) = axes.count == 2 ? (axes[0], axes[1]) : (flat, axes[0])
        let geometry = Pool2DGeometry(
            batch: dims[0], channels: dims[1], inputHeight: axes.count == 2 ? spatial[0] : 1,
            inputWidth: spatial[spatial.count - 1], outputHeight: h.output, outputWidth: w.output,
            kernelHeight: h.kernel, kernelWidth: w.kernel, strideHeight: h.stride, strideWidth: w.stride,
            dilationHeight: h.dilation, dilationWidth: w.dilation, padTop: h.padBegin, padLeft: w.padBegin,
            padBottom: h.padEnd, padRight: w.padEnd)
        let shape: Shape
        do {
            shape = try Shape(validating: [dims[0], dims[1]] + axes.map(\.output))
        } catch {
            throw .tensor(error)
        }
        return (geometry, shape)
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        [ValueFact(dtype: .float32, shape: try geometry(inputs).1)]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        var copy = self
        copy.planned = try geometry(inputs).0
        return copy
    }

    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int {
        guard let geometry = planned ?? (try? geometry(inputs).0) else { return 0 }
        return Pool2D.workspaceByteCount(kind, geometry: geometry, threadCount: threadCount)
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let geometry: Pool2DGeometry
        if let planned {
            geometry = planned
        } else {
            geometry = try self.geometry([ValueFact(dtype: x.dtype, shape: x.shape)]).0
        }
        Pool2D.run(
            kind, geometry: geometry, input: x.pointer(as: Float.self), output: outputs[0].pointer(as: Float.self),
            context: context)
    }
}

/// `GlobalAveragePool` and `GlobalMaxPool` (opsets 1–22): one value per (image, channel) over all
/// spatial axes, kept as size-1 axes.
struct GlobalPool: Operator {
    let max: Bool

    init(node: Node, max: Bool) throws(OperatorError) {
        self.max = max
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let x = try inputs.required(0)
        guard x.dtype == .float32 else { throw .unsupportedDType(input: 0, x.dtype) }
        guard x.shape.rank >= 3 else {
            throw .invalidShape("input \(x.shape) must have rank at least 3 (N, C, spatial…)")
        }
        let dims = [x.shape[0], x.shape[1]] + Array(repeating: 1, count: x.shape.rank - 2)
        return [ValueFact(dtype: .float32, shape: Shape(dims))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let planes = x.shape[0] * x.shape[1]
        if planes == 0 { return }
        Pool2D.global(
            max: max, planes: planes, planeSize: x.elementCount / planes, input: x.pointer(as: Float.self),
            output: outputs[0].pointer(as: Float.self), context: context)
    }
}

/// A stem convolution on the direct kernel and the max pooling that alone reads its output,
/// joined by the planner into one step (``DirectConvMaxPool``): the full-resolution map is pooled
/// from each worker's scratch and never stored. The step's inputs are the convolution's input,
/// weights and bias.
struct DirectConvMaxPoolStep: Operator {
    let conv: Conv
    let joined: DirectConvMaxPool

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        let p = joined.pool
        return [ValueFact(dtype: .float32, shape: Shape([p.batch, p.channels, p.outputHeight, p.outputWidth]))]
    }

    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int {
        joined.workspaceByteCount(threadCount: threadCount)
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        let needed = joined.workspaceByteCount(threadCount: 1)
        guard context.workspace != nil && context.workspaceByteCount >= needed else {
            throw .invalidShape(
                "stem and pooling need \(needed) workspace bytes, the plan gave \(context.workspaceByteCount)")
        }
        joined.run(
            input: x.pointer(as: Float.self), weights: w.pointer(as: Float.self),
            bias: inputs.optional(2).map { UnsafePointer($0.pointer(as: Float.self)) }, activation: conv.activation,
            output: outputs[0].pointer(as: Float.self), context: context)
    }
}
