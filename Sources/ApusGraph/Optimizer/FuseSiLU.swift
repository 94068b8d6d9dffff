/// Fuses SiLU written out as `Mul(y, Sigmoid(y))` (how PyTorch exports `nn.SiLU` before opset 24)
/// into the epilogue of the convolution producing `y`: `FusedConv` with `activation = "SiLU"`.
///
/// EfficientNet has one after nearly every convolution; unfused, each is two extra passes over
/// the feature map and a `Sigmoid` computed apart from the product.
enum FuseSiLU {
    static func apply(_ graph: Graph) -> Graph {
        var graph = graph
        var removed = Set<Int>()
        let index = GraphIndex(graph)
        for (producerIndex, producer) in graph.nodes.enumerated() {
            let isConv = producer.domain.isEmpty && producer.opType == "Conv"
            let isFusedConv =
                producer.domain == Node.apusDomain && producer.opType == "FusedConv"
                && producer.attributes["activation"] == nil
            guard isConv || isFusedConv, let y = producer.outputs.first, !index.outputNames.contains(y),
                let readers = index.consumers[y], readers.count == 2
            else { continue }
            // One reader is Sigmoid(y), the other Mul(y, s) or Mul(s, y) with s the Sigmoid's output.
            let nodes = readers.map { graph.nodes[$0] }
            guard let sigmoidSlot = nodes.firstIndex(where: { $0.domain.isEmpty && $0.opType == "Sigmoid" }) else {
                continue
            }
            let sigmoidIndex = readers[sigmoidSlot]
            let mulIndex = readers[1 - sigmoidSlot]
            let sigmoid = graph.nodes[sigmoidIndex]
            let mul = graph.nodes[mulIndex]
            guard sigmoid.inputs == [y], sigmoid.outputs.count == 1, let s = sigmoid.outputs.first,
                index.soleConsumer(of: s) == mulIndex, mul.domain.isEmpty, mul.opType == "Mul",
                mul.inputs == [y, s] || mul.inputs == [s, y], mul.outputs.count == 1,
                !removed.contains(sigmoidIndex), !removed.contains(mulIndex)
            else { continue }
            var fused = producer
            fused.domain = Node.apusDomain
            fused.opType = "FusedConv"
            fused.attributes["activation"] = .string("SiLU")
            fused.outputs = [mul.outputs[0]]
            graph.nodes[producerIndex] = fused
            removed.insert(sigmoidIndex)
            removed.insert(mulIndex)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return graph
    }
}
