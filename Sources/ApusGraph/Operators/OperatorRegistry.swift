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

        // (end of elementwise section)

        // MARK: Normalization, softmax, reductions (Normalization.swift, Reduction.swift)

        // (end of normalization section)

        // MARK: Shape and layout (ShapeOps.swift, Constants.swift)
        "Identity": { node, _ throws(OperatorError) in try Identity(node: node) },

        // (end of shape section)
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
