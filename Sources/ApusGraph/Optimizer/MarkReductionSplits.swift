import ApusTensor

/// Marks the 1 × 1 convolutions that read a depthwise convolution's output (the projection of an
/// inverted residual block, MobileNetV2's and EfficientNet's) with `split_reduction = 1`, turning
/// a plain `Conv` into the equivalent `FusedConv` to carry it. A plan of such a layer may then
/// multiply the two halves of its input channels apart and add them
/// (``Conv2DPlan/reductionSplit(_:algorithm:batchesColumns:packed:)``): with two threads each half
/// is the channels one thread's depthwise task has just written, so neither reads the other
/// core's cache. Elsewhere (a 1 × 1 layer after a squeeze-and-excitation scale, which one thread
/// wrote, or ResNet's) the split measured no gain, so only this pattern is marked.
///
/// A convolution is depthwise here when its weights are a rank-4 initializer `[C, 1, kH, kW]` and
/// its `group` is `C`; a 1 × 1 layer when its weights are `[M, C, 1, 1]` with `group` 1.
enum MarkReductionSplits {
    /// The attribute that marks a layer.
    static let attribute = "split_reduction"

    static func apply(_ graph: Graph) -> Graph {
        var graph = graph
        let index = GraphIndex(graph)
        for (nodeIndex, node) in graph.nodes.enumerated() {
            guard let w = convolutionWeightShape(node, in: graph), w[2] == 1, w[3] == 1,
                (try? node.int("group", default: 1)) == 1,
                let x = node.inputs.first, let producerIndex = index.producer[x]
            else { continue }
            let producer = graph.nodes[producerIndex]
            guard let d = convolutionWeightShape(producer, in: graph), d[1] == 1, d[0] == w[1],
                (try? producer.int("group", default: 1)) == d[0]
            else { continue }
            var marked = node
            marked.domain = Node.apusDomain
            marked.opType = "FusedConv"
            marked.attributes[attribute] = .int(1)
            graph.nodes[nodeIndex] = marked
        }
        return graph
    }
}
