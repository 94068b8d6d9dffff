import ApusGraph
import ApusTensor

/// Static facts about a model: operator histogram, parameters, inferred shapes and FLOPs, for
/// `apus inspect` and `apus bench`.
public struct ModelSummary: Sendable {
    /// Node count per operator type (fused types as `ai.apus.FusedConv`).
    public var operatorCounts: [String: Int]
    /// Number of scalar parameters in the initializers (prepacked copies of weights not counted).
    public var parameterCount: Int
    /// Bytes of the initializers (prepacked copies of weights not counted).
    public var parameterBytes: Int
    /// Floating-point operations of one run at the shapes used (multiply-add = 2), for Conv,
    /// Gemm and MatMul nodes.
    public var flops: Int
    /// Input shapes the FLOPs were computed for (symbolic dimensions bound to 1).
    public var inputShapes: [String: Shape]
    /// Inferred output shapes.
    public var outputShapes: [String: Shape]
    /// Per-node FLOPs for Conv/Gemm/MatMul nodes.
    public var nodeFlops: [String: Int]
}

extension Model {
    /// Computes the ``ModelSummary`` for the given input shapes (default: the declared shapes
    /// with symbolic dimensions bound to 1).
    public func summary(inputShapes: [String: Shape]? = nil) throws(ModelError) -> ModelSummary {
        let graph = runner.graph
        var counts: [String: Int] = [:]
        for node in graph.nodes {
            counts[node.domain.isEmpty ? node.opType : "\(node.domain).\(node.opType)", default: 0] += 1
        }
        var parameters = 0
        var bytes = 0
        let packed = PrepackWeights.packedTensorNames(in: graph)
        for (name, tensor) in graph.initializers where !packed.contains(name) {
            parameters += tensor.elementCount
            bytes += tensor.byteCount
        }
        var shapes: [String: Shape] = [:]
        var facts: [ValueFact] = []
        for info in graph.inputs {
            let shape =
                inputShapes?[info.name]
                ?? Shape((info.dimensions ?? []).map { if case .fixed(let size) = $0 { size } else { 1 } })
            shapes[info.name] = shape
            facts.append(ValueFact(dtype: info.dtype ?? .float32, shape: shape))
        }
        let known: [String: ValueFact]
        do {
            known = try runner.inferFacts(inputFacts: facts)
        } catch {
            throw .graph(error)
        }
        var total = 0
        var perNode: [String: Int] = [:]
        for node in graph.nodes {
            guard let output = node.outputs.first, let outFact = known[output] else { continue }
            let inputs = node.inputs.map { $0.isEmpty ? nil : known[$0] }
            var flops = 0
            switch node.opType {
            case "Conv", "FusedConv":
                if inputs.count > 1, let weight = inputs[1] {
                    let perOutput = weight.shape.dropFirst().reduce(1, *)
                    flops = 2 * outFact.shape.elementCount * perOutput
                }
            case "Gemm", "FusedGemm", "MatMul":
                if let a = inputs.first ?? nil {
                    let transA = (try? node.int("transA", default: 0)) ?? 0
                    let k =
                        a.shape.rank == 0
                        ? 1 : (transA == 1 && a.shape.rank == 2 ? a.shape[0] : a.shape[a.shape.rank - 1])
                    flops = 2 * outFact.shape.elementCount * k
                }
            default: break
            }
            if flops > 0 {
                perNode[node.name] = flops
                total += flops
            }
        }
        var outputs: [String: Shape] = [:]
        for output in graph.outputs { outputs[output.name] = known[output.name]?.shape }
        return ModelSummary(
            operatorCounts: counts, parameterCount: parameters, parameterBytes: bytes, flops: total,
            inputShapes: shapes, outputShapes: outputs, nodeFlops: perNode)
    }
}
