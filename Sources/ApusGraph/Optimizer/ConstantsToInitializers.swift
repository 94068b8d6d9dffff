/// Turns `Constant` nodes that carry a tensor `value` into initializers, so that later passes
/// (fusing a `Clip` whose bounds are constants, folding) see them as constants.
enum ConstantsToInitializers {
    static func apply(_ graph: Graph) -> Graph {
        var graph = graph
        let outputNames = Set(graph.outputs.map(\.name))
        graph.nodes = graph.nodes.filter { node in
            guard node.domain.isEmpty, node.opType == "Constant", node.outputs.count == 1,
                let output = node.outputs.first, !outputNames.contains(output), graph.initializers[output] == nil,
                node.attributes.count == 1, case .tensor(let value)? = node.attributes["value"]
            else { return true }
            graph.initializers[output] = value
            return false
        }
        return graph
    }
}
