/// Who produces and who reads each value, for rewrite passes.
struct GraphIndex {
    var producer: [String: Int] = [:]
    var consumers: [String: [Int]] = [:]
    let outputNames: Set<String>

    init(_ graph: Graph) {
        outputNames = Set(graph.outputs.map(\.name))
        for (index, node) in graph.nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = index }
            for input in Set(node.inputs) where !input.isEmpty { consumers[input, default: []].append(index) }
        }
    }

    /// The single node reading `value`, if exactly one node reads it and it is not a graph output.
    func soleConsumer(of value: String) -> Int? {
        guard !outputNames.contains(value), let readers = consumers[value], readers.count == 1 else { return nil }
        return readers[0]
    }
}

/// The weights' dimensions of a `Conv` or `FusedConv` node whose weights are a rank-4 initializer
/// of `graph`, else `nil`: how passes that must not infer shapes recognize a 2-D convolution.
func convolutionWeightShape(_ node: Node, in graph: Graph) -> [Int]? {
    let isConv =
        node.domain.isEmpty && node.opType == "Conv" || node.domain == Node.apusDomain && node.opType == "FusedConv"
    guard isConv, node.inputs.count >= 2, let weights = graph.initializers[node.inputs[1]], weights.shape.rank == 4
    else { return nil }
    return weights.shape.dimensions
}

/// A unique name for a tensor created by a pass.
func freshName(_ base: String, in graph: Graph) -> String {
    var name = base
    var counter = 1
    while graph.initializers[name] != nil {
        name = "\(base)_\(counter)"
        counter += 1
    }
    return name
}
