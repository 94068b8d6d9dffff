import ApusTensor

/// Fuses an activation (and, for convolutions, a residual `Add`) into the epilogue of the `Conv`
/// or `Gemm` that feeds it, producing `ai.apus` `FusedConv` / `FusedGemm` nodes:
/// `Y = activation(conv(X, W) + B + Z)`. Each rewrite needs the producer's output to be read by
/// that one node only.
enum FuseActivations {
    static func apply(_ graph: Graph) -> Graph {
        var graph = fuseResidualAdds(graph)
        graph = fuseActivations(graph)
        return graph
    }

    /// The activation a node computes, as `FusedConv`'s `activation` and `activation_params`.
    static func activation(of node: Node, in graph: Graph) -> (name: String, params: [Float])? {
        guard node.domain.isEmpty, node.inputs.first?.isEmpty == false else { return nil }
        switch node.opType {
        case "Relu", "Sigmoid", "HardSwish", "Tanh":
            return node.inputs.count == 1 ? (node.opType, []) : nil
        case "HardSigmoid":
            guard let alpha = try? node.float("alpha", default: 0.2), let beta = try? node.float("beta", default: 0.5) else {
                return nil
            }
            return ("HardSigmoid", [alpha, beta])
        case "LeakyRelu":
            guard let alpha = try? node.float("alpha", default: 0.01) else { return nil }
            return ("LeakyRelu", [alpha])
        case "Clip":
            var low = -Float.greatestFiniteMagnitude
            var high = Float.greatestFiniteMagnitude
            if let value = try? node.float("min") { low = value }
            if let value = try? node.float("max") { high = value }
            for (position, bound) in [(1, 0), (2, 1)] where node.inputs.count > position && !node.inputs[position].isEmpty {
                guard let tensor = graph.initializers[node.inputs[position]], tensor.dtype == .float32,
                    tensor.elementCount == 1, let value = try? tensor.scalars(as: Float.self).first
                else { return nil }
                if bound == 0 { low = value } else { high = value }
            }
            return ("Clip", [low, high])
        default:
            return nil
        }
    }

    static func fuseActivations(_ graph: Graph) -> Graph {
        var graph = graph
        var removed = Set<Int>()
        let index = GraphIndex(graph)
        for (producerIndex, producer) in graph.nodes.enumerated() {
            let isConv = producer.domain.isEmpty && producer.opType == "Conv"
            let isFusedConv = producer.domain == Node.apusDomain && producer.opType == "FusedConv"
                && producer.attributes["activation"] == nil
            let isGemm = producer.domain.isEmpty && producer.opType == "Gemm"
            guard isConv || isFusedConv || isGemm, let output = producer.outputs.first,
                let consumerIndex = index.soleConsumer(of: output), !removed.contains(consumerIndex),
                let (name, params) = activation(of: graph.nodes[consumerIndex], in: graph)
            else { continue }
            if name == "Tanh" { continue }
            var fused = producer
            fused.domain = Node.apusDomain
            fused.opType = isGemm ? "FusedGemm" : "FusedConv"
            fused.attributes["activation"] = .string(name)
            if !params.isEmpty { fused.attributes["activation_params"] = .floats(params) }
            fused.outputs = [graph.nodes[consumerIndex].outputs[0]]
            graph.nodes[producerIndex] = fused
            removed.insert(consumerIndex)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return graph
    }

    /// `Add(conv(X), Z)` → `FusedConv(X, W, B, Z)` when Z is a computed value (not a constant) and
    /// the convolution has no activation yet. FusedConv checks at plan time that Z has exactly the
    /// output's shape.
    static func fuseResidualAdds(_ graph: Graph) -> Graph {
        var graph = graph
        var removed = Set<Int>()
        var index = GraphIndex(graph)
        for (addIndex, add) in graph.nodes.enumerated()
        where add.domain.isEmpty && add.opType == "Add" && add.inputs.count == 2 {
            for (convSide, residualSide) in [(0, 1), (1, 0)] {
                let convOutput = add.inputs[convSide]
                let residual = add.inputs[residualSide]
                guard convOutput != residual, graph.initializers[residual] == nil,
                    let convIndex = index.producer[convOutput], !removed.contains(convIndex),
                    index.soleConsumer(of: convOutput) == addIndex
                else { continue }
                let conv = graph.nodes[convIndex]
                guard conv.domain.isEmpty && conv.opType == "Conv" || conv.domain == Node.apusDomain
                    && conv.opType == "FusedConv" && conv.attributes["activation"] == nil && conv.inputs.count < 4
                else { continue }
                var fused = conv
                fused.domain = Node.apusDomain
                fused.opType = "FusedConv"
                while fused.inputs.count < 3 { fused.inputs.append("") }
                fused.inputs.append(residual)
                fused.outputs = [add.outputs[0]]
                graph.nodes[convIndex] = fused
                removed.insert(addIndex)
                index = GraphIndex(graph)
                break
            }
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return graph
    }
}
