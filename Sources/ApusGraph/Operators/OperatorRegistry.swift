/// The table from operator type to implementation: every operator Apus runs is listed here,
/// literally, and `Docs/operators.md` lists the same set (a test checks both ways).
public enum OperatorRegistry {
    /// Builds an operator from a node; `opset` is the model's opset for the node's domain.
    public typealias Factory = @Sendable (_ node: Node, _ opset: Int) throws(OperatorError) -> any Operator

    /// Operators of the default ONNX domain (`""`, also spelled `"ai.onnx"`).
    public static let onnx: [String: Factory] = [
        // MARK: Convolution, GEMM and pooling (Conv.swift, Gemm.swift, Pooling.swift)
        "Conv": { node, _ throws(OperatorError) in try Conv(node: node) },
        "Gemm": { node, _ throws(OperatorError) in try Gemm(node: node) },
        "MatMul": { node, _ throws(OperatorError) in try MatMul(node: node) },
        "MaxPool": { node, _ throws(OperatorError) in try Pool(node: node, max: true) },
        "AveragePool": { node, _ throws(OperatorError) in try Pool(node: node, max: false) },
        "GlobalAveragePool": { node, _ throws(OperatorError) in try GlobalPool(node: node, max: false) },
        "GlobalMaxPool": { node, _ throws(OperatorError) in try GlobalPool(node: node, max: true) },

        // (end of convolution section)

        // MARK: Elementwise and activations (Elementwise.swift, Activations.swift)
        "Add": { _, _ throws(OperatorError) in BinaryElementwise(kind: .arithmetic(.add)) },
        "Sub": { _, _ throws(OperatorError) in BinaryElementwise(kind: .arithmetic(.subtract)) },
        "Mul": { _, _ throws(OperatorError) in BinaryElementwise(kind: .arithmetic(.multiply)) },
        "Div": { _, _ throws(OperatorError) in BinaryElementwise(kind: .arithmetic(.divide)) },
        "Pow": { _, _ throws(OperatorError) in BinaryElementwise(kind: .arithmetic(.power)) },
        "Equal": { _, _ throws(OperatorError) in BinaryElementwise(kind: .equal) },
        "Greater": { _, _ throws(OperatorError) in BinaryElementwise(kind: .greater) },
        "Less": { _, _ throws(OperatorError) in BinaryElementwise(kind: .less) },
        "GreaterOrEqual": { _, _ throws(OperatorError) in BinaryElementwise(kind: .greaterOrEqual) },
        "LessOrEqual": { _, _ throws(OperatorError) in BinaryElementwise(kind: .lessOrEqual) },
        "And": { _, _ throws(OperatorError) in BinaryElementwise(kind: .and) },
        "Or": { _, _ throws(OperatorError) in BinaryElementwise(kind: .or) },
        "Xor": { _, _ throws(OperatorError) in BinaryElementwise(kind: .xor) },
        "Not": { _, _ throws(OperatorError) in Not() },
        "Where": { _, _ throws(OperatorError) in Where() },
        "Sum": { _, _ throws(OperatorError) in VariadicElementwise(kind: .sum) },
        "Mean": { _, _ throws(OperatorError) in VariadicElementwise(kind: .mean) },
        "Max": { _, _ throws(OperatorError) in VariadicElementwise(kind: .max) },
        "Min": { _, _ throws(OperatorError) in VariadicElementwise(kind: .min) },
        "Cast": { node, _ throws(OperatorError) in try Cast(node: node) },
        "CastLike": { _, _ throws(OperatorError) in Cast() },
        "Relu": { _, _ throws(OperatorError) in UnaryElementwise(operation: .relu) },
        "LeakyRelu": { node, _ throws(OperatorError) in
            UnaryElementwise(operation: .leakyRelu(alpha: try node.float("alpha", default: 0.01)))
        },
        "Sigmoid": { _, _ throws(OperatorError) in UnaryElementwise(operation: .sigmoid) },
        "HardSigmoid": { node, _ throws(OperatorError) in
            UnaryElementwise(
                operation: .hardSigmoid(
                    alpha: try node.float("alpha", default: 0.2), beta: try node.float("beta", default: 0.5)))
        },
        "HardSwish": { _, _ throws(OperatorError) in UnaryElementwise(operation: .hardSwish) },
        "Tanh": { _, _ throws(OperatorError) in UnaryElementwise(operation: .tanh) },
        "Erf": { _, _ throws(OperatorError) in UnaryElementwise(operation: .erf) },
        "Gelu": { node, _ throws(OperatorError) in try UnaryElementwise.gelu(node: node) },
        "Sqrt": { _, _ throws(OperatorError) in UnaryElementwise(operation: .sqrt) },
        "Exp": { _, _ throws(OperatorError) in UnaryElementwise(operation: .exp) },
        "Log": { _, _ throws(OperatorError) in UnaryElementwise(operation: .log) },
        "Neg": { _, _ throws(OperatorError) in UnaryElementwise(operation: .negate) },
        "Abs": { _, _ throws(OperatorError) in UnaryElementwise(operation: .absolute) },
        "Sign": { _, _ throws(OperatorError) in UnaryElementwise(operation: .sign) },
        "Reciprocal": { _, _ throws(OperatorError) in UnaryElementwise(operation: .reciprocal) },
        "Floor": { _, _ throws(OperatorError) in UnaryElementwise(operation: .floor) },
        "Ceil": { _, _ throws(OperatorError) in UnaryElementwise(operation: .ceil) },
        "Round": { _, _ throws(OperatorError) in UnaryElementwise(operation: .round) },
        "Softplus": { _, _ throws(OperatorError) in UnaryElementwise(operation: .softplus) },
        "Softsign": { _, _ throws(OperatorError) in UnaryElementwise(operation: .softsign) },
        "Elu": { node, _ throws(OperatorError) in
            UnaryElementwise(operation: .elu(alpha: try node.float("alpha", default: 1)))
        },
        "Selu": { node, _ throws(OperatorError) in
            UnaryElementwise(
                operation: .selu(
                    alpha: try node.float("alpha", default: 1.673_263_2),
                    gamma: try node.float("gamma", default: 1.050_701)))
        },
        "Sin": { _, _ throws(OperatorError) in UnaryElementwise(operation: .sin) },
        "Cos": { _, _ throws(OperatorError) in UnaryElementwise(operation: .cos) },
        "Mish": { _, _ throws(OperatorError) in UnaryElementwise(operation: .mish) },
        "Clip": { node, opset throws(OperatorError) in try Clip(node: node, opset: opset) },

        // (end of elementwise section)

        // MARK: Normalization, softmax, reductions (Normalization.swift, Reduction.swift)
        "Softmax": { node, opset throws(OperatorError) in try Softmax(node: node, opset: opset, logarithm: false) },
        "LogSoftmax": { node, opset throws(OperatorError) in try Softmax(node: node, opset: opset, logarithm: true) },
        "BatchNormalization": { node, _ throws(OperatorError) in try BatchNormalization(node: node) },
        "LayerNormalization": { node, _ throws(OperatorError) in try LayerNormalization(node: node) },
        "InstanceNormalization": { node, _ throws(OperatorError) in try InstanceNormalization(node: node) },
        "ReduceSum": { node, opset throws(OperatorError) in try Reduce(node: node, opset: opset, operation: .sum) },
        "ReduceMean": { node, opset throws(OperatorError) in try Reduce(node: node, opset: opset, operation: .mean) },
        "ReduceMax": { node, opset throws(OperatorError) in try Reduce(node: node, opset: opset, operation: .maximum) },
        "ReduceMin": { node, opset throws(OperatorError) in try Reduce(node: node, opset: opset, operation: .minimum) },
        "ReduceProd": { node, opset throws(OperatorError) in try Reduce(node: node, opset: opset, operation: .product) },
        "ReduceSumSquare": { node, opset throws(OperatorError) in
            try Reduce(node: node, opset: opset, operation: .sumSquare)
        },
        "ReduceL1": { node, opset throws(OperatorError) in try Reduce(node: node, opset: opset, operation: .l1) },
        "ReduceL2": { node, opset throws(OperatorError) in try Reduce(node: node, opset: opset, operation: .l2) },

        // (end of normalization section)

        // MARK: Shape and layout (ShapeOps.swift, Constants.swift)
        "Concat": { node, _ throws(OperatorError) in try Concat(node: node) },
        "Constant": { node, _ throws(OperatorError) in try Constant(node: node) },
        "ConstantOfShape": { node, _ throws(OperatorError) in try ConstantOfShape(node: node) },
        "Dropout": { node, _ throws(OperatorError) in try Dropout(node: node) },
        "Expand": { node, _ throws(OperatorError) in try Expand(node: node) },
        "Flatten": { node, _ throws(OperatorError) in try Flatten(node: node) },
        "Gather": { node, _ throws(OperatorError) in try Gather(node: node) },
        "GatherElements": { node, _ throws(OperatorError) in try GatherElements(node: node) },
        "Identity": { node, _ throws(OperatorError) in try Identity(node: node) },
        "Pad": { node, _ throws(OperatorError) in try Pad(node: node) },
        "Range": { node, _ throws(OperatorError) in try RangeOperator(node: node) },
        "Reshape": { node, _ throws(OperatorError) in try Reshape(node: node) },
        "Shape": { node, _ throws(OperatorError) in try ShapeOf(node: node) },
        "Size": { node, _ throws(OperatorError) in try SizeOf(node: node) },
        "Slice": { node, _ throws(OperatorError) in try SliceOperator(node: node) },
        "Split": { node, _ throws(OperatorError) in try Split(node: node) },
        "Squeeze": { node, _ throws(OperatorError) in try Squeeze(node: node) },
        "Tile": { node, _ throws(OperatorError) in try Tile(node: node) },
        "Transpose": { node, _ throws(OperatorError) in try Transpose(node: node) },
        "Unsqueeze": { node, _ throws(OperatorError) in try Unsqueeze(node: node) },

        // (end of shape section)

        // MARK: Additional operators (moreops)
        "Resize": { node, opset throws(OperatorError) in try ResizeOperator(node: node, opset: opset) },
        "Upsample": { node, opset throws(OperatorError) in try ResizeOperator.upsample(node: node, opset: opset) },
        "PRelu": { _, opset throws(OperatorError) in PRelu(opset: opset) },
        "ArgMax": { node, _ throws(OperatorError) in try ArgExtremum(node: node, largest: true) },
        "ArgMin": { node, _ throws(OperatorError) in try ArgExtremum(node: node, largest: false) },
        "TopK": { node, opset throws(OperatorError) in try TopK(node: node, opset: opset) },
        "Mod": { node, _ throws(OperatorError) in try Mod(node: node) },
        "Hardmax": { node, opset throws(OperatorError) in try Hardmax(node: node, opset: opset) },
        "ReduceLogSum": { node, opset throws(OperatorError) in
            try LogReduce(node: node, opset: opset, exponentiate: false)
        },
        "ReduceLogSumExp": { node, opset throws(OperatorError) in
            try LogReduce(node: node, opset: opset, exponentiate: true)
        },
        "IsInf": { node, _ throws(OperatorError) in try FloatClassify.isInf(node: node) },
        "IsNaN": { _, _ throws(OperatorError) in FloatClassify(name: "IsNaN") { $0.isNaN } },
        "ThresholdedRelu": { node, _ throws(OperatorError) in try FloatMap.thresholdedRelu(node: node) },
        "Shrink": { node, _ throws(OperatorError) in try FloatMap.shrink(node: node) },
        "ConvTranspose": { node, _ throws(OperatorError) in try ConvTranspose(node: node) },
        "DepthToSpace": { node, _ throws(OperatorError) in try SpaceDepth(node: node, toSpace: true) },
        "SpaceToDepth": { node, _ throws(OperatorError) in try SpaceDepth(node: node, toSpace: false) },
        "Trilu": { node, _ throws(OperatorError) in try Trilu(node: node) },
        "ScatterElements": { node, _ throws(OperatorError) in try ScatterElements(node: node) },
        "Scatter": { node, _ throws(OperatorError) in try ScatterElements(node: node) },
        "ScatterND": { node, _ throws(OperatorError) in try ScatterND(node: node) },

        // (end of moreops section)
    ]

    /// Fused operators Apus's optimizer produces (domain ``Node/apusDomain``).
    public static let apus: [String: Factory] = [
        // (fused operators)
        "FusedConv": { node, _ throws(OperatorError) in try Conv(node: node, fused: true) },
        "FusedGemm": { node, _ throws(OperatorError) in try Gemm(node: node, fused: true) },
    ]

    /// The factory for a node's operator, or `nil` if Apus does not implement it.
    public static func factory(opType: String, domain: String) -> Factory? {
        switch domain {
        case "", "ai.onnx": onnx[opType]
        case Node.apusDomain: apus[opType]
        default: nil
        }
    }
}
