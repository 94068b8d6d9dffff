import ApusOps
import ApusTensor

/// The window attributes shared by `Conv` and the pooling operators (`auto_pad`, `kernel_shape`,
/// `strides`, `dilations`, `pads`), validated against the spatial rank when shapes are known.
struct SpatialWindow: Sendable {
    enum AutoPad: Sendable { case notSet, sameUpper, sameLower, valid }

    var autoPad: AutoPad
    var kernelShape: [Int]?
    var strides: [Int]?
    var dilations: [Int]?
    var pads: [Int]?

    init(node: Node) throws(OperatorError) {
        switch try node.string("auto_pad", default: "NOTSET") {
        case "NOTSET", "": autoPad = .notSet
        case "SAME_UPPER": autoPad = .sameUpper
        case "SAME_LOWER": autoPad = .sameLower
        case "VALID": autoPad = .valid
        case let other: throw .invalidAttribute("auto_pad", reason: "unknown value '\(other)'")
        }
        kernelShape = try node.ints("kernel_shape")
        strides = try node.ints("strides")
        dilations = try node.ints("dilations")
        pads = try node.ints("pads")
    }

    /// Per spatial axis: output size and leading/trailing padding.
    struct Axis {
        var kernel: Int
        var stride: Int
        var dilation: Int
        var padBegin: Int
        var padEnd: Int
        var output: Int
    }

    /// Resolves the window for `input` spatial sizes and `kernel` sizes; `ceilMode` applies the
    /// pooling rule (the last window starts inside the input or the leading padding).
    func resolve(input: [Int], kernel: [Int], ceilMode: Bool = false) throws(OperatorError) -> [Axis] {
        let rank = input.count
        func list(_ name: String, _ values: [Int]?, count: Int, default value: Int, minimum: Int) throws(OperatorError)
            -> [Int]
        {
            guard let values else { return Array(repeating: value, count: count) }
            guard values.count == count else {
                throw .invalidAttribute(
                    name, reason: "has \(values.count) values, expected \(count) for \(rank) spatial axes")
            }
            guard values.allSatisfy({ $0 >= minimum }) else {
                throw .invalidAttribute(name, reason: "values \(values) must be at least \(minimum)")
            }
            return values
        }
        let strides = try list("strides", strides, count: rank, default: 1, minimum: 1)
        let dilations = try list("dilations", dilations, count: rank, default: 1, minimum: 1)
        let pads = try list("pads", autoPad == .notSet ? pads : nil, count: 2 * rank, default: 0, minimum: 0)
        guard kernel.count == rank, kernel.allSatisfy({ $0 >= 1 }) else {
            throw .invalidShape("kernel \(kernel) does not fit \(rank) spatial axes \(input)")
        }
        var axes: [Axis] = []
        for i in 0..<rank {
            var begin = pads[i]
            var end = pads[rank + i]
            let size: Int?
            switch autoPad {
            case .notSet, .valid:
                size = Pool2DGeometry.outputSize(
                    input: input[i], kernel: kernel[i], stride: strides[i], dilation: dilations[i], padBegin: begin,
                    padEnd: end, ceilMode: ceilMode)
            case .sameUpper, .sameLower:
                let out = (input[i] + strides[i] - 1) / strides[i]
                let (span, overflow) = (kernel[i] - 1).multipliedReportingOverflow(by: dilations[i])
                guard !overflow, span < Int.max / 2, input[i] < Int.max / 2 else {
                    throw .invalidShape("window of axis \(i) overflows")
                }
                let total = max(0, (out - 1) * strides[i] + span + 1 - input[i])
                begin = autoPad == .sameUpper ? total / 2 : total - total / 2
                end = total - begin
                size = out
            }
            guard let size, size >= 1 else {
                throw .invalidShape(
                    "kernel \(kernel[i]) (dilation \(dilations[i])) does not fit input size \(input[i]) with pads \(begin)+\(end) on spatial axis \(i)"
                )
            }
            axes.append(
                Axis(
                    kernel: kernel[i], stride: strides[i], dilation: dilations[i], padBegin: begin, padEnd: end,
                    output: size))
        }
        return axes
    }
}

extension [ValueFact?] {
    /// A float32 input of rank 3 or 4 (1-D or 2-D spatial); rank 5 is refused as unsupported.
    func spatialInput(_ index: Int, operation: String) throws(OperatorError) -> ValueFact {
        let fact = try required(index)
        guard fact.dtype == .float32 else { throw .unsupportedDType(input: index, fact.dtype) }
        guard fact.shape.rank >= 3 else {
            throw .invalidShape("input \(index) \(fact.shape) must have rank 3 or 4 (N, C, spatial…)")
        }
        guard fact.shape.rank <= 4 else {
            throw .unsupported("\(operation) with \(fact.shape.rank - 2) spatial dimensions")
        }
        return fact
    }
}

/// `Conv` (ONNX opsets 1–22, 1-D and 2-D) and its fused form `FusedConv` (domain `ai.apus`):
/// the same attributes plus `activation` / `activation_params` and an optional residual input `Z`
/// added before the activation, and optionally the weights prepacked by `apus convert`: a fifth
/// input `P` (float32) with the attribute `packed_layout` naming its layout
/// (``PrepackedWeights/attribute(_:)``).
struct Conv: Operator {
    let window: SpatialWindow
    let groups: Int
    let activation: FusedActivation
    let fused: Bool
    /// The layout and panel format of the prepacked weights input `P`, when the attribute names
    /// ones this build reads; `nil` otherwise (the plan packs `W` itself).
    let packedLayout: (layout: PrepackedWeights.Layout, format: PrepackedWeights.Format)?
    /// Whether the optimizer marked the layer for a split reduction (``MarkReductionSplits``,
    /// `split_reduction = 1` on `FusedConv`).
    let splitsReduction: Bool
    /// Set by ``specialized(for:threadCount:)``.
    var plan: Conv2DPlan?

    init(node: Node, fused: Bool = false) throws(OperatorError) {
        window = try SpatialWindow(node: node)
        groups = try node.int("group", default: 1)
        guard groups >= 1 else { throw .invalidAttribute("group", reason: "must be at least 1, is \(groups)") }
        self.fused = fused
        if fused {
            let name = try node.string("activation", default: "")
            let parameters = try node.floats("activation_params") ?? []
            guard let activation = FusedActivation(name: name, parameters: parameters) else {
                throw .invalidAttribute(
                    "activation", reason: "unknown activation '\(name)' with parameters \(parameters)")
            }
            self.activation = activation
            packedLayout = try node.string("packed_layout").flatMap(PrepackedWeights.layout(fromAttribute:))
            splitsReduction = try node.int(MarkReductionSplits.attribute, default: 0) == 1
        } else {
            activation = .none
            packedLayout = nil
            splitsReduction = false
        }
    }

    /// The convolution's sizes, with 1-D convolutions as height-1 2-D ones.
    func geometry(_ inputs: [ValueFact?]) throws(OperatorError) -> (Conv2DGeometry, Shape) {
        try inputs.checkCount(fused ? 2...PrepackWeights.inputIndex + 1 : 2...3)
        let x = try inputs.spatialInput(0, operation: "Conv")
        let w = try inputs.required(1)
        guard w.dtype == .float32 else { throw .dtypeMismatch(input: 1, expected: .float32, actual: w.dtype) }
        let xs = x.shape.dimensions
        let ws = w.shape.dimensions
        guard ws.count == xs.count else {
            throw .invalidShape("weights \(w.shape) must have the rank of input \(x.shape)")
        }
        let spatial = Array(xs[2...])
        let kernel = Array(ws[2...])
        if let declared = window.kernelShape, declared != kernel {
            throw .invalidShape("kernel_shape \(declared) differs from the weights' \(kernel)")
        }
        let (batch, channels, outChannels) = (xs[0], xs[1], ws[0])
        guard channels >= 1, outChannels >= 1, ws[1] >= 1 else {
            throw .invalidShape("channel counts must be positive: input \(x.shape), weights \(w.shape)")
        }
        guard channels == ws[1] * groups else {
            throw .invalidShape("input channels \(channels) != weight channels \(ws[1]) × group \(groups)")
        }
        guard outChannels % groups == 0 else {
            throw .invalidShape("output channels \(outChannels) are not a multiple of group \(groups)")
        }
        let axes = try window.resolve(input: spatial, kernel: kernel)
        let (h, v) =
            axes.count == 2
            ? (axes[0], axes[1])
            : (SpatialWindow.Axis(kernel: 1, stride: 1, dilation: 1, padBegin: 0, padEnd: 0, output: 1), axes[0])
        let geometry = Conv2DGeometry(
            batch: batch, inputChannels: channels, inputHeight: axes.count == 2 ? spatial[0] : 1,
            inputWidth: spatial[spatial.count - 1], outputChannels: outChannels, groups: groups, kernelHeight: h.kernel,
            kernelWidth: v.kernel, strideHeight: h.stride, strideWidth: v.stride, dilationHeight: h.dilation,
            dilationWidth: v.dilation, padTop: h.padBegin, padLeft: v.padBegin, padBottom: h.padEnd, padRight: v.padEnd)
        let output = Shape([batch, outChannels] + axes.map(\.output))
        do {
            _ = try output.checkedElementCount()
        } catch {
            throw .tensor(error)
        }
        if let bias = inputs.optional(2) {
            guard bias.dtype == .float32 else { throw .dtypeMismatch(input: 2, expected: .float32, actual: bias.dtype) }
            guard bias.shape.dimensions == [outChannels] else {
                throw .invalidShape("bias \(bias.shape) must be [\(outChannels)]")
            }
        }
        if let residual = inputs.optional(3) {
            guard residual.dtype == .float32 else {
                throw .dtypeMismatch(input: 3, expected: .float32, actual: residual.dtype)
            }
            guard residual.shape == output else {
                throw .invalidShape("residual Z \(residual.shape) must have the output's shape \(output)")
            }
        }
        return (geometry, output)
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        let (_, output) = try geometry(inputs)
        return [ValueFact(dtype: .float32, shape: output)]
    }

    /// Chooses the algorithm once. Constant weights are handed to the plan, which packs them for
    /// the AVX-512 kernel or transforms them for Winograd here, once per plan; otherwise ONNX's
    /// [M, C/g, kH, kW] layout is already the row-major M × K matrix sgemm reads, and the depthwise
    /// kernel's [C, kH, kW].
    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        var copy = self
        let geometry = try geometry(inputs).0
        if let weights = inputs.optional(1)?.constant {
            let plan = Conv2DPlan(
                geometry: geometry, weights: weights.pointer(as: Float.self),
                prepacked: try prepackedWeights(inputs, geometry: geometry), threadCount: threadCount,
                splitsReduction: splitsReduction)
            copy.plan = plan
            // The plan reads its own copy from now on; a mapped file's pages of the originals can go,
            // and so can prepacked weights the plan only copied from (or did not read at all).
            if plan.readsOwnWeights { weights.releaseResidentPages() }
            if !plan.usesPrepackedWeights, let packed = inputs.optional(PrepackWeights.inputIndex)?.constant {
                packed.releaseResidentPages()
            }
        } else {
            copy.plan = Conv2DPlan(geometry: geometry)
        }
        return copy
    }

    /// The prepacked weights input `P`, checked: a float32 constant holding exactly the floats
    /// its layout needs for `geometry`. `nil` without it, when ``packedLayout`` is unknown, or when
    /// it names a layout and format no plan reads for this convolution.
    func prepackedWeights(_ inputs: [ValueFact?], geometry: Conv2DGeometry) throws(OperatorError) -> PrepackedWeights? {
        let index = PrepackWeights.inputIndex
        guard let packed = inputs.optional(index) else { return nil }
        guard packed.dtype == .float32 else {
            throw .dtypeMismatch(input: index, expected: .float32, actual: packed.dtype)
        }
        guard let tensor = packed.constant else {
            throw .invalidShape("prepacked weights input \(index) must be a constant")
        }
        guard let (layout, format) = packedLayout,
            let expected = Conv2DPlan.packedFloatCount(layout, format: format, geometry: geometry)
        else { return nil }
        guard tensor.elementCount == expected else {
            let named = PrepackedWeights.attribute(layout, format: format)
            throw .invalidShape(
                "prepacked weights \(tensor.shape) hold \(tensor.elementCount) floats; the \(named) layout of weights "
                    + "[\(geometry.outputChannels), \(geometry.inputChannels / geometry.groups), "
                    + "\(geometry.kernelHeight), \(geometry.kernelWidth)] needs \(expected)")
        }
        return PrepackedWeights(
            layout: layout, format: format, values: tensor.pointer(as: Float.self), count: expected,
            owner: tensor.storage)
    }

    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int {
        guard let geometry = try? geometry(inputs).0 else { return 0 }
        return (plan ?? Conv2DPlan(geometry: geometry)).workspaceByteCount(threadCount: threadCount)
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        try run(inputs, output: outputs[0], planeMeans: nil, context: context)
    }

    /// Computes the output into `output` and, with `planeMeans` (N × M × 1 × 1), the mean of each
    /// of its planes (``ConvGlobalPool``).
    func run(_ inputs: [Tensor?], output: Tensor, planeMeans: Tensor?, context: ComputeContext)
        throws(OperatorError)
    {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        let plan: Conv2DPlan
        if let specialized = self.plan {
            plan = specialized
        } else {
            let facts: [ValueFact?] = inputs.map { $0.map { ValueFact(dtype: $0.dtype, shape: $0.shape) } }
            plan = Conv2DPlan(geometry: try geometry(facts).0)
        }
        let needed = plan.workspaceByteCount(threadCount: 1)
        guard needed == 0 || (context.workspace != nil && context.workspaceByteCount >= needed) else {
            throw .invalidShape(
                "convolution needs \(needed) workspace bytes, the plan gave \(context.workspaceByteCount)")
        }
        if output.elementCount == 0 {
            // Means of empty planes are NaN, as the separate pooling gives them.
            planeMeans.map { $0.pointer(as: Float.self).update(repeating: .nan, count: $0.elementCount) }
            return
        }
        plan.run(
            input: x.pointer(as: Float.self), weights: w.pointer(as: Float.self),
            bias: inputs.optional(2).map { UnsafePointer($0.pointer(as: Float.self)) },
            residual: inputs.optional(3).map { UnsafePointer($0.pointer(as: Float.self)) },
            output: output.pointer(as: Float.self), activation: activation, context: context,
            planeMeans: planeMeans?.pointer(as: Float.self))
    }
}

/// A convolution and the `GlobalAveragePool` of its output, joined by the planner into one step
/// with both outputs (a squeeze-and-excitation block starts so: EfficientNet's depthwise layers).
/// The depthwise kernel averages each task's planes right after computing them, in cache and on
/// the convolution's threads, where the separate pooling read the whole map back on one thread
/// (``Conv2DPlan/run(input:weights:bias:residual:output:activation:context:planeMeans:)``); the
/// same bits. The step's inputs are the convolution's.
struct ConvGlobalPool: Operator {
    let conv: Conv

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        let output = try conv.outputFacts(inputs)[0]
        let dims = [output.shape[0], output.shape[1]] + Array(repeating: 1, count: output.shape.rank - 2)
        return [output, ValueFact(dtype: .float32, shape: Shape(dims))]
    }

    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int {
        conv.workspaceByteCount(for: inputs, threadCount: threadCount)
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        try conv.run(inputs, output: outputs[0], planeMeans: outputs[1], context: context)
    }
}

/// A 1 × 1 convolution and the stride-2 depthwise convolution that alone reads its output, joined
/// by the planner into one step (``ExpandDepthwise``): the expanded map is computed band by band
/// into the workspace and never allocated whole. The step's inputs are the expansion's input,
/// weights and bias, then the depthwise layer's weights and bias (absent biases are `nil`).
struct ExpandDepthwiseConv: Operator {
    let expansion: Conv
    let depthwise: Conv
    let joined: ExpandDepthwise

    /// Joins two specialized convolutions, or `nil` when ``ExpandDepthwise`` does not take them or
    /// either has a residual input (prepacked weights are in the plans already).
    init?(expansion: Conv, expansionHasResidual: Bool, depthwise: Conv, depthwiseHasResidual: Bool, threadCount: Int) {
        guard !expansionHasResidual, !depthwiseHasResidual, let first = expansion.plan, let second = depthwise.plan,
            let joined = ExpandDepthwise(
                expansion: first, depthwise: second, depthwiseActivation: depthwise.activation,
                threadCount: threadCount)
        else { return nil }
        self.expansion = expansion
        self.depthwise = depthwise
        self.joined = joined
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        let d = joined.depthwise.geometry
        return [ValueFact(dtype: .float32, shape: Shape([1, d.outputChannels, d.outputHeight, d.outputWidth]))]
    }

    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int {
        joined.workspaceByteCount(threadCount: threadCount)
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let depthwiseWeights = try inputs.required(3)
        joined.run(
            input: x.pointer(as: Float.self),
            expansionBias: inputs.optional(2).map { UnsafePointer($0.pointer(as: Float.self)) },
            expansionActivation: expansion.activation,
            depthwiseWeights: depthwiseWeights.pointer(as: Float.self),
            depthwiseBias: inputs.optional(4).map { UnsafePointer($0.pointer(as: Float.self)) },
            depthwiseActivation: depthwise.activation, output: outputs[0].pointer(as: Float.self), context: context)
    }
}

/// A channel-scaling `Mul` (x · s, s one value per channel and image, as a squeeze-and-excitation
/// block ends) and the 1 × 1 convolution that alone reads its product, joined by the planner into
/// one step: the convolution's packed weights are scaled per image instead of the map, or, when
/// the layer splits its reduction, each half's weights or input channels on the thread that
/// multiplies them
/// (``Conv2DPlan/runScaledInput(input:scale:scaleStride:bias:residual:output:activation:context:)``).
/// The step's inputs are x, s, then the convolution's weights, bias and residual (absent ones
/// `nil`).
struct ScaledInputConv: Operator {
    let conv: Conv

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        guard let g = conv.plan?.geometry else { throw .invalidShape("scaled convolution without a plan") }
        return [ValueFact(dtype: .float32, shape: Shape([g.batch, g.outputChannels, g.outputHeight, g.outputWidth]))]
    }

    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int {
        conv.plan?.scaledInputWorkspaceByteCount(threadCount: threadCount) ?? 0
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        guard let plan = conv.plan else { throw .invalidShape("scaled convolution without a plan") }
        let x = try inputs.required(0)
        let s = try inputs.required(1)
        let g = plan.geometry
        // Compared dimension by dimension: an array literal here would allocate on every run.
        guard x.shape.rank == 4, x.shape[0] == g.batch, x.shape[1] == g.inputChannels, x.shape[2] == g.inputHeight,
            x.shape[3] == g.inputWidth, s.shape.rank == 4, s.shape[0] == g.batch || s.shape[0] == 1,
            s.elementCount == s.shape[0] * g.inputChannels
        else {
            throw .invalidShape("scaled convolution of \(x.shape) by \(s.shape) does not fit its plan")
        }
        let needed = plan.scaledInputWorkspaceByteCount(threadCount: context.threadCount)
        guard context.workspace != nil && context.workspaceByteCount >= needed else {
            throw .invalidShape(
                "scaled convolution needs \(needed) workspace bytes, the plan gave \(context.workspaceByteCount)")
        }
        plan.runScaledInput(
            input: x.pointer(as: Float.self), scale: s.pointer(as: Float.self),
            scaleStride: s.shape[0] == 1 ? 0 : g.inputChannels,
            bias: inputs.optional(3).map { UnsafePointer($0.pointer(as: Float.self)) },
            residual: inputs.optional(4).map { UnsafePointer($0.pointer(as: Float.self)) },
            output: outputs[0].pointer(as: Float.self), activation: conv.activation, context: context)
    }
}
