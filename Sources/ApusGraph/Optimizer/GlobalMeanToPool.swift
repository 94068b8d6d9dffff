import ApusTensor

/// Rewrites `ReduceMean` over the two spatial axes of an NCHW feature map with `keepdims = 1`
/// (how PyTorch exports `AdaptiveAvgPool2d(1)` and `x.mean((2, 3), keepdim=True)`) as
/// `GlobalAveragePool`, whose kernel sums each contiguous plane with SIMD.
///
/// The input must be known to have rank 4 without shape inference: it is produced by a `Conv`
/// or `FusedConv` whose weights are a rank-4 initializer.
enum GlobalMeanToPool {
    static func apply(_ graph: Graph) -> Graph {
        var graph = graph
        let index = GraphIndex(graph)
        for (nodeIndex, node) in graph.nodes.enumerated()
        where node.domain.isEmpty && node.opType == "ReduceMean" && node.outputs.count == 1 {
            guard let x = node.inputs.first, let producerIndex = index.producer[x] else { continue }
            guard convolutionWeightShape(graph.nodes[producerIndex], in: graph) != nil else { continue }
            guard (try? node.int("keepdims", default: 1)) == 1 else { continue }
            var axes: [Int]?
            if node.inputs.count >= 2 && !node.inputs[1].isEmpty {
                guard let tensor = graph.initializers[node.inputs[1]], tensor.dtype == .int64,
                    let values = try? tensor.scalars(as: Int64.self)
                else { continue }
                axes = values.map { Int($0) }
            } else if let attribute = try? node.ints("axes") {
                axes = attribute
            }
            guard let axes, Set(axes.map { $0 < 0 ? $0 + 4 : $0 }) == [2, 3], axes.count == 2 else { continue }
            graph.nodes[nodeIndex] = Node(
                name: node.name, opType: "GlobalAveragePool", inputs: [x], outputs: node.outputs)
        }
        return graph
    }
}
