import ApusOps
import ApusTensor

/// Packs the constant weights of every convolution ahead of time, into the layout its plan
/// keeps them in on a CPU of the target (``PrepackedWeights/Target``: with AVX-512, or with AVX2
/// and OpenBLAS's kernel; ``Conv2DPlan/prepack(geometry:weights:target:threadCount:)``), and
/// hands them to the node as a fifth input: `Conv` / `FusedConv(X, W, B, Z)` becomes
/// `FusedConv(X, W, B, Z, P)` with `packed_layout` naming P's layout and panel format. Making a
/// plan on such a CPU then copies nothing: the kernels read P where the artifact's mapping has it.
///
/// `apus convert` runs it last. The plain weights stay in the graph (a plan on a CPU or for a
/// shape that wants another layout packs them as before), so the artifact grows by the packed
/// copies: about the weights' size, and four times the weights of Winograd layers.
public enum PrepackWeights {
    /// The input of `FusedConv` that holds the prepacked weights (after X, W, B and Z).
    public static let inputIndex = 4

    /// The initializers of `graph` that are prepacked weights: second copies of parameters.
    public static func packedTensorNames(in graph: Graph) -> Set<String> {
        var names = Set<String>()
        for node in graph.nodes
        where node.domain == Node.apusDomain && node.opType == "FusedConv" && node.inputs.count > inputIndex {
            names.insert(node.inputs[inputIndex])
        }
        return names
    }

    /// What a pass did.
    public struct Report: Sendable {
        /// The CPUs the weights were packed for.
        public var target = PrepackedWeights.Target.avx512
        /// Convolutions given prepacked weights.
        public var convolutions = 0
        /// The panel formats written (`p8k128`, `o4k384`).
        public var formats: Set<String> = []
        /// Bytes of the packed tensors added.
        public var bytes = 0
        /// Why nothing was packed, when nothing was.
        public var skipped: String?
    }

    /// Adds prepacked weights for `target` to `graph` (optimized, topologically sorted), with
    /// shapes inferred for its declared inputs; a leading symbolic dimension (the batch) is bound
    /// to 1, since the packing does not depend on it. Any other symbolic dimension leaves the
    /// graph as it is: which layout a layer's plan wants depends on its spatial size. Weights
    /// packed before (for another target, say) are dropped and packed again.
    public static func apply(
        _ graph: Graph, target: PrepackedWeights.Target = .avx512, threadCount: Int = 1
    ) throws(GraphError) -> (graph: Graph, report: Report) {
        let graph = removingPackedWeights(graph)
        var report = Report()
        report.target = target
        var inputFacts: [ValueFact] = []
        for info in graph.inputs {
            guard let dimensions = info.dimensions else {
                report.skipped = "input '\(info.name)' has no declared shape"
                return (graph, report)
            }
            var sizes: [Int] = []
            for (axis, dimension) in dimensions.enumerated() {
                switch dimension {
                case .fixed(let size): sizes.append(size)
                case .symbolic(let name):
                    guard axis == 0 else {
                        report.skipped = "input '\(info.name)' has the symbolic dimension '\(name)' on axis \(axis)"
                        return (graph, report)
                    }
                    sizes.append(1)
                }
            }
            inputFacts.append(ValueFact(dtype: info.dtype ?? .float32, shape: Shape(sizes)))
        }
        let operators = try Topology.buildOperators(for: graph)
        let facts = try Planner.inferFacts(graph: graph, operators: operators, inputFacts: inputFacts)
        var taken = Set(graph.initializers.keys).union(graph.inputs.map(\.name))
        for node in graph.nodes { taken.formUnion(node.outputs) }
        var result = graph
        for (index, node) in graph.nodes.enumerated() {
            let isConv = node.domain.isEmpty && node.opType == "Conv"
            let isFusedConv = node.domain == Node.apusDomain && node.opType == "FusedConv"
            guard isConv || isFusedConv, (2...inputIndex).contains(node.inputs.count),
                let conv = operators[index] as? Conv, let weights = graph.initializers[node.inputs[1]],
                weights.dtype == .float32
            else { continue }
            let inputs = node.inputs.map { $0.isEmpty ? nil : facts[$0] }
            guard let geometry = try? conv.geometry(inputs).0,
                let prepacked = Conv2DPlan.prepack(
                    geometry: geometry, weights: weights.pointer(as: Float.self), target: target,
                    threadCount: threadCount)
            else { continue }
            let packed: Tensor
            do {
                packed = try Tensor(zeros: Shape([prepacked.count]), dtype: .float32)
            } catch {
                throw .node(name: node.name, opType: node.opType, .tensor(error))
            }
            prepacked.write(packed.pointer(as: Float.self))
            var name = node.inputs[1] + ".packed"
            var suffix = 1
            while taken.contains(name) {
                suffix += 1
                name = node.inputs[1] + ".packed\(suffix)"
            }
            taken.insert(name)
            result.initializers[name] = packed
            var rewritten = node
            rewritten.domain = Node.apusDomain
            rewritten.opType = "FusedConv"
            while rewritten.inputs.count < inputIndex { rewritten.inputs.append("") }
            rewritten.inputs.append(name)
            rewritten.attributes["packed_layout"] = .string(
                PrepackedWeights.attribute(prepacked.layout, format: prepacked.format))
            result.nodes[index] = rewritten
            report.convolutions += 1
            report.formats.insert(prepacked.format.tag)
            report.bytes += packed.byteCount
        }
        return (result, report)
    }

    /// `graph` without prepacked weights: each `FusedConv`'s input `P` and `packed_layout` removed,
    /// and the tensors no other node reads.
    public static func removingPackedWeights(_ graph: Graph) -> Graph {
        let names = packedTensorNames(in: graph)
        guard !names.isEmpty else { return graph }
        var result = graph
        for index in result.nodes.indices
        where result.nodes[index].domain == Node.apusDomain
            && result.nodes[index].opType == "FusedConv" && result.nodes[index].inputs.count > inputIndex
        {
            result.nodes[index].inputs.removeSubrange(inputIndex...)
            result.nodes[index].attributes["packed_layout"] = nil
        }
        var read = Set(result.outputs.map(\.name))
        for node in result.nodes { read.formUnion(node.inputs) }
        for name in names where !read.contains(name) { result.initializers[name] = nil }
        return result
    }
}
