import ApusTensor

/// Errors raised while validating, planning or running a graph. Each names the node, value or
/// input concerned and the numbers involved.
public enum GraphError: Error, Sendable, CustomStringConvertible {
    /// Operators Apus does not implement, all of them at once: op type (with domain) → node names.
    case unsupportedOperators([String: [String]])
    /// A node's attributes, inputs or shapes are not acceptable.
    case node(name: String, opType: String, OperatorError)
    /// A node reads a value that no node, input or initializer produces.
    case undefinedValue(String, node: String)
    /// Two producers (nodes, inputs or initializers) define the same value name.
    case duplicateProducer(String, producers: [String])
    /// The nodes cannot be ordered: there is a cycle through these nodes.
    case cycle(nodes: [String])
    /// A declared graph output is produced by nothing.
    case outputNotProduced(String)
    /// The caller passed an input the graph does not declare.
    case unknownInput(String, expected: [String])
    /// The caller did not pass a declared input.
    case missingInput(String)
    /// An input tensor has another dtype than declared.
    case inputDTypeMismatch(String, expected: DType, actual: DType)
    /// An input tensor's shape does not fit the declaration.
    case inputShapeMismatch(String, expected: [Dimension], actual: [Int], reason: String)
    /// Planning this model for these shapes needs more memory than the budget allows.
    case memoryBudgetExceeded(needed: Int, budget: Int, at: String)
    /// The graph is larger than the configured limits.
    case limitExceeded(String)
    /// OpenBLAS could not be loaded.
    case blasUnavailable(String)

    public var description: String {
        switch self {
        case .unsupportedOperators(let byType):
            "unsupported operators: "
                + byType.sorted { $0.key < $1.key }.map { type, nodes in
                    let shown = nodes.prefix(3).joined(separator: ", ")
                    return
                        "\(type) (\(nodes.count) node\(nodes.count == 1 ? "" : "s"): \(shown)\(nodes.count > 3 ? ", …" : ""))"
                }.joined(separator: "; ")
        case .node(let name, let opType, let error): "node '\(name)' (\(opType)): \(error)"
        case .undefinedValue(let value, let node): "node '\(node)' reads value '\(value)', which nothing produces"
        case .duplicateProducer(let value, let producers):
            "value '\(value)' is produced more than once (by \(producers.joined(separator: ", ")))"
        case .cycle(let nodes): "the graph has a cycle through \(nodes.prefix(5).joined(separator: ", "))"
        case .outputNotProduced(let name): "graph output '\(name)' is produced by no node, input or initializer"
        case .unknownInput(let name, let expected):
            "unknown input '\(name)'; the model's inputs are \(expected.joined(separator: ", "))"
        case .missingInput(let name): "missing input '\(name)'"
        case .inputDTypeMismatch(let name, let expected, let actual):
            "input '\(name)' must be \(expected), got \(actual)"
        case .inputShapeMismatch(let name, let expected, let actual, let reason):
            "input '\(name)' has shape \(actual), expected \(expected.map(\.description)): \(reason)"
        case .memoryBudgetExceeded(let needed, let budget, let at):
            "\(at) needs \(needed) bytes, over the memory budget of \(budget) bytes"
        case .limitExceeded(let what): "limit exceeded: \(what)"
        case .blasUnavailable(let reason): reason
        }
    }
}
