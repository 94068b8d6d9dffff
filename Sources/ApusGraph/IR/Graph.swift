import ApusTensor

/// One dimension of a declared input or output shape: a fixed size or a named symbol such as
/// `"batch"` that is bound when the model is run.
public enum Dimension: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case symbolic(String)

    public var description: String {
        switch self {
        case .fixed(let size): String(size)
        case .symbolic(let name): name
        }
    }
}

/// A declared graph input or output: its name, element type and (possibly symbolic) shape.
public struct ValueInfo: Hashable, Sendable {
    /// The value name nodes refer to.
    public var name: String
    /// The element type, if declared.
    public var dtype: DType?
    /// The dimensions, if declared; `nil` means unknown rank.
    public var dimensions: [Dimension]?

    public init(name: String, dtype: DType?, dimensions: [Dimension]?) {
        self.name = name
        self.dtype = dtype
        self.dimensions = dimensions
    }
}

/// An attribute value of a node, with ONNX's attribute kinds.
public indirect enum Attribute: Sendable {
    case float(Float)
    case int(Int)
    case string(String)
    case tensor(Tensor)
    case graph(Graph)
    case floats([Float])
    case ints([Int])
    case strings([String])
    case tensors([Tensor])
    case graphs([Graph])

    /// The ONNX name of the attribute's kind, for error messages.
    public var kindName: String {
        switch self {
        case .float: "float"
        case .int: "int"
        case .string: "string"
        case .tensor: "tensor"
        case .graph: "graph"
        case .floats: "floats"
        case .ints: "ints"
        case .strings: "strings"
        case .tensors: "tensors"
        case .graphs: "graphs"
        }
    }
}

/// One operation of a graph, in ONNX semantics.
///
/// Inputs and outputs are value names; an empty name marks an omitted optional input or output.
public struct Node: Sendable {
    /// The node's name (may be empty in files; readers fill in a unique one).
    public var name: String
    /// The operator type, e.g. `"Conv"`.
    public var opType: String
    /// The operator domain: `""` for the default ONNX domain, ``Node/apusDomain`` for Apus's fused ops.
    public var domain: String
    /// Names of the input values.
    public var inputs: [String]
    /// Names of the output values.
    public var outputs: [String]
    /// Attributes by name.
    public var attributes: [String: Attribute]

    /// The domain of operators Apus's optimizer produces (fused forms of ONNX operators).
    public static let apusDomain = "ai.apus"

    public init(
        name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
        attributes: [String: Attribute] = [:]
    ) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
}

/// A computation graph: declared inputs and outputs, constant tensors and nodes.
///
/// Value types throughout; the optimizer produces new graphs rather than mutating shared state.
public struct Graph: Sendable {
    /// The graph's name.
    public var name: String
    /// Declared inputs the caller feeds (initializers are not listed here).
    public var inputs: [ValueInfo]
    /// Declared outputs.
    public var outputs: [ValueInfo]
    /// The nodes, in the file's order (which need not be topological).
    public var nodes: [Node]
    /// Constant tensors by value name (ONNX initializers and weights).
    public var initializers: [String: Tensor]
    /// Opset version by domain (`""` is the default ONNX domain).
    public var opsetImports: [String: Int]

    public init(
        name: String = "", inputs: [ValueInfo] = [], outputs: [ValueInfo] = [], nodes: [Node] = [],
        initializers: [String: Tensor] = [:], opsetImports: [String: Int] = ["": 17]
    ) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
        self.opsetImports = opsetImports
    }

    /// The default-domain opset version.
    public var opsetVersion: Int { opsetImports[""] ?? opsetImports["ai.onnx"] ?? 1 }
}
