/// Graph rewrites applied once at load, each a named pass with its own tests:
/// ``RemoveIdentities``, ``FoldBatchNorm``, ``FuseActivations``, ``FuseSiLU``, ``GlobalMeanToPool``,
/// ``MarkReductionSplits``.
public enum Optimizer {
    /// The passes to run.
    public struct Passes: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let removeIdentities = Passes(rawValue: 1)
        public static let foldBatchNorm = Passes(rawValue: 2)
        public static let fuseActivations = Passes(rawValue: 4)
        public static let fuseSiLU = Passes(rawValue: 8)
        public static let globalMeanToPool = Passes(rawValue: 16)
        public static let markReductionSplits = Passes(rawValue: 32)
        public static let all: Passes = [
            .removeIdentities, .foldBatchNorm, .fuseActivations, .fuseSiLU, .globalMeanToPool, .markReductionSplits,
        ]
    }

    /// Applies the passes in order to a topologically sorted graph; the result is sorted too.
    public static func optimize(_ graph: Graph, passes: Passes = .all) throws(GraphError) -> Graph {
        var graph = graph
        graph = ConstantsToInitializers.apply(graph)
        if passes.contains(.removeIdentities) { graph = RemoveIdentities.apply(graph) }
        if passes.contains(.foldBatchNorm) { graph = FoldBatchNorm.apply(graph) }
        if passes.contains(.fuseActivations) { graph = FuseActivations.apply(graph) }
        // After the residual fusion, so that `SiLU(conv + Z)` fuses too.
        if passes.contains(.fuseSiLU) { graph = FuseSiLU.apply(graph) }
        if passes.contains(.globalMeanToPool) { graph = GlobalMeanToPool.apply(graph) }
        // Last: it reads the fused convolutions.
        if passes.contains(.markReductionSplits) { graph = MarkReductionSplits.apply(graph) }
        return try Topology.sorted(graph)
    }
}
