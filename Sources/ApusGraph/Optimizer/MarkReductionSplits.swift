import ApusTensor

/// Marks the 1 × 1 convolutions that read a depthwise convolution's output (the projection of an
/// inverted residual block, MobileNetV2's and EfficientNet's) with `split_reduction = 1`, turning
/// a plain `Conv` into the equivalent `FusedConv` to carry it. A plan of such a layer may then
/// multiply the two halves of its input channels apart and add them
/// (``Conv2DPlan/reductionSplit(_:algorithm:batchesColumns:packed:)``): with two threads each half
/// is the channels one thread's depthwise task has just written, so neither reads the other
/// core's cache. The same holds through a squeeze-and-excitation `Mul` of the depthwise output
/// (EfficientNet), which the planner then joins into the layer so that each half scales its own
/// channels. Elsewhere (ResNet's 1 × 1 layers, or a layer reading a scaled map one thread wrote)
/// the split measured no gain, so only these patterns are marked.
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
            var producer = graph.nodes[producerIndex]
            // A squeeze-and-excitation scale between them (EfficientNet): the layer then reads
            // the depthwise output through the `Mul`, which the planner joins into it
            // (``ScaledInputConv``), scaling each half on the thread that multiplies it.
            if producer.domain.isEmpty, producer.opType == "Mul", producer.inputs.count == 2,
                let scaled = producer.inputs.lazy.compactMap({ index.producer[$0] }).first(where: {
                    isDepthwise(graph.nodes[$0], channels: w[1], in: graph)
                })
            {
                producer = graph.nodes[scaled]
            }
            guard isDepthwise(producer, channels: w[1], in: graph) else { continue }
            var marked = node
            marked.domain = Node.apusDomain
            marked.opType = "FusedConv"
            marked.attributes[attribute] = .int(1)
            graph.nodes[nodeIndex] = marked
        }
        return graph
    }

    /// Whether `node` is a depthwise convolution of `channels` channels.
    private static func isDepthwise(_ node: Node, channels: Int, in graph: Graph) -> Bool {
        guard let d = convolutionWeightShape(node, in: graph), d[1] == 1, d[0] == channels else { return false }
        return (try? node.int("group", default: 1)) == d[0]
    }
}
