import ApusTensor

/// What is wrong with one node. The planner wraps it in ``GraphError/node(name:opType:_:)`` so the
/// message names the node and its operator type.
public enum OperatorError: Error, Sendable, CustomStringConvertible {
    /// An attribute has another kind than the operator expects.
    case wrongAttributeKind(String, expected: String, actual: String)
    /// A required attribute is missing.
    case missingAttribute(String)
    /// An attribute has a value the operator does not accept.
    case invalidAttribute(String, reason: String)
    /// The node has too few or too many inputs.
    case inputCount(expected: ClosedRange<Int>, actual: Int)
    /// A required input is omitted.
    case missingInput(index: Int)
    /// An input has an element type the operator does not accept.
    case unsupportedDType(input: Int, DType)
    /// Two inputs must have the same element type and do not.
    case dtypeMismatch(input: Int, expected: DType, actual: DType)
    /// Input shapes do not fit the operator; the reason names the shapes.
    case invalidShape(String)
    /// An input must be known at plan time (for example `Reshape`'s target shape) and is not.
    case notConstant(input: Int)
    /// A value read from a tensor is out of range (for example a `Gather` index).
    case outOfRange(String)
    /// A legal ONNX feature that Apus does not implement.
    case unsupported(String)
    /// A tensor could not be created (allocation refused, bad shape).
    case tensor(TensorError)

    public var description: String {
        switch self {
        case .wrongAttributeKind(let name, let expected, let actual):
            "attribute '\(name)' must be \(expected), is \(actual)"
        case .missingAttribute(let name): "missing attribute '\(name)'"
        case .invalidAttribute(let name, let reason): "attribute '\(name)': \(reason)"
        case .inputCount(let expected, let actual):
            "expects \(expected.lowerBound)...\(expected.upperBound) inputs, got \(actual)"
        case .missingInput(let index): "input \(index) is required"
        case .unsupportedDType(let input, let dtype): "input \(input) has unsupported dtype \(dtype)"
        case .dtypeMismatch(let input, let expected, let actual):
            "input \(input) must be \(expected), is \(actual)"
        case .invalidShape(let reason): "invalid shape: \(reason)"
        case .notConstant(let input): "input \(input) must be a constant known when the model is planned"
        case .outOfRange(let reason): "out of range: \(reason)"
        case .unsupported(let reason): "unsupported: \(reason)"
        case .tensor(let error): "\(error)"
        }
    }
}
