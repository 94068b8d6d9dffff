import ApusTensor

/// Folds an inference-mode `BatchNormalization` into the `Conv` that feeds it, when the Conv's
/// weights and the normalization's parameters are constants and nothing else reads the Conv's
/// output: `W'[m] = W[m]·s[m]`, `B'[m] = (B[m] − mean[m])·s[m] + beta[m]` with
/// `s = gamma / sqrt(var + epsilon)`, computed in Double and rounded once.
enum FoldBatchNorm {
    static func apply(_ graph: Graph) -> Graph {
        var graph = graph
        var removed = Set<Int>()
        let index = GraphIndex(graph)
        for (convIndex, conv) in graph.nodes.enumerated() where conv.domain.isEmpty && conv.opType == "Conv" {
            guard conv.inputs.count >= 2, let output = conv.outputs.first,
                let bnIndex = index.soleConsumer(of: output), !removed.contains(bnIndex)
            else { continue }
            let bn = graph.nodes[bnIndex]
            guard bn.domain.isEmpty, bn.opType == "BatchNormalization", bn.inputs.count == 5, bn.inputs[0] == output,
                bn.outputs.dropFirst().allSatisfy(\.isEmpty),
                (try? bn.int("training_mode", default: 0)) == 0,
                let epsilon = try? bn.float("epsilon", default: 1e-5),
                let weight = graph.initializers[conv.inputs[1]], weight.dtype == .float32, weight.shape.rank >= 3
            else { continue }
            let channels = weight.shape[0]
            let params = bn.inputs[1...4].map { graph.initializers[$0] }
            guard params.allSatisfy({ $0?.dtype == .float32 && $0?.elementCount == channels }) else { continue }
            let bias: Tensor? = conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? graph.initializers[conv.inputs[2]] : nil
            if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
                guard let bias, bias.dtype == .float32, bias.elementCount == channels else { continue }
            }
            let gamma = (try? params[0]?.scalars(as: Float.self)) ?? []
            let beta = (try? params[1]?.scalars(as: Float.self)) ?? []
            let mean = (try? params[2]?.scalars(as: Float.self)) ?? []
            let variance = (try? params[3]?.scalars(as: Float.self)) ?? []
            let oldBias = (try? bias?.scalars(as: Float.self)) ?? [Float](repeating: 0, count: channels)
            guard let oldWeight = try? weight.scalars(as: Float.self) else { continue }
            let perChannel = channels == 0 ? 0 : oldWeight.count / channels
            var newWeight = [Float](repeating: 0, count: oldWeight.count)
            var newBias = [Float](repeating: 0, count: channels)
            for m in 0..<channels {
                let scale = Double(gamma[m]) / (Double(variance[m]) + Double(epsilon)).squareRoot()
                for i in 0..<perChannel {
                    newWeight[m * perChannel + i] = Float(Double(oldWeight[m * perChannel + i]) * scale)
                }
                newBias[m] = Float((Double(oldBias[m]) - Double(mean[m])) * scale + Double(beta[m]))
            }
            let weightName = freshName(conv.inputs[1] + "_bn_folded", in: graph)
            graph.initializers[weightName] = Tensor(shape: weight.shape, scalars: newWeight)
            let biasName = freshName((conv.name.isEmpty ? "conv" : conv.name) + "_bn_bias", in: graph)
            graph.initializers[biasName] = Tensor(shape: [channels], scalars: newBias)
            var fused = conv
            fused.inputs = [conv.inputs[0], weightName, biasName]
            fused.outputs = [bn.outputs[0]]
            graph.nodes[convIndex] = fused
            removed.insert(bnIndex)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return dropUnusedInitializers(graph)
    }
}

/// Removes initializers no node reads and no output names (left behind by folding passes).
func dropUnusedInitializers(_ graph: Graph) -> Graph {
    var used = Set(graph.outputs.map(\.name))
    for node in graph.nodes { used.formUnion(node.inputs) }
    var result = graph
    result.initializers = graph.initializers.filter { used.contains($0.key) }
    return result
}
