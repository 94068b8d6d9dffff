/// Drops `Identity` and inference-mode `Dropout` nodes by rewiring their consumers to their input.
/// A node whose output is a graph output is kept, so output names stay as declared.
enum RemoveIdentities {
    static func apply(_ graph: Graph) -> Graph {
        let outputNames = Set(graph.outputs.map(\.name))
        var rename: [String: String] = [:]
        var nodes: [Node] = []
        for var node in graph.nodes {
            node.inputs = node.inputs.map { rename[$0] ?? $0 }
            let isIdentity = node.domain.isEmpty && (node.opType == "Identity" || node.opType == "Dropout")
            let maskUnused = node.outputs.count < 2 || node.outputs[1].isEmpty
            if isIdentity, maskUnused, let input = node.inputs.first, !input.isEmpty, let output = node.outputs.first,
                !outputNames.contains(output),
                node.opType == "Identity" || node.inputs.count < 3 || node.inputs[2].isEmpty
            {
                rename[output] = input
                continue
            }
            nodes.append(node)
        }
        var result = graph
        result.nodes = nodes
        return result
    }
}
