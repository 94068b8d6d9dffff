import ApusOps
import ApusTensor
import Synchronization

/// A split batch whose late layers run on the whole batch: the nodes before a cut run sample by
/// sample (``BatchSplit``), the nodes from the cut on once over all samples.
///
/// Sample by sample keeps the early layers' large maps in the caches, but a late layer's product
/// is then narrow (49 columns for one 7 × 7 map) and its weights are read once per sample; over
/// the whole batch the same layer is one wide product (``Conv2DPlan/batchesColumns``). The cut is
/// the first point in the graph after which every value of the whole batch fits
/// ``GraphRunner/Options/batchTailBytes`` and where a single value crosses it (the output of a
/// residual block, say): the values before it are copied into one whole-batch tensor, which the
/// tail reads. Two runners share the graph's constants: one for the nodes before the cut (its
/// output is the crossing value, its batches split), one for the rest (whole batches only). Their
/// plans are their own: weights the artifact does not hold prepacked are packed once more for them.
final class BatchTail: Sendable {
    /// The nodes before the cut; declared output: the crossing value.
    let prefix: GraphRunner
    /// The nodes from the cut on; declared inputs: the crossing value, then the graph inputs
    /// those nodes read.
    let tail: GraphRunner
    /// The first node of the tail.
    let cutNode: String
    /// Which of the graph's inputs each runner reads.
    private let prefixInputs: [String]
    private let tailGraphInputs: [String]
    /// Crossing tensors of finished runs, kept for the next (a run takes one or makes one).
    private let spare = Mutex<[[String: Tensor]]>([])

    private init(
        prefix: GraphRunner, tail: GraphRunner, cutNode: String, prefixInputs: [String], tailGraphInputs: [String]
    ) {
        self.prefix = prefix
        self.tail = tail
        self.cutNode = cutNode
        self.prefixInputs = prefixInputs
        self.tailGraphInputs = tailGraphInputs
    }

    /// The tail for `graph` (sorted, optimized, shown splittable by ``BatchSplitRule``), or `nil`
    /// when no cut qualifies.
    ///
    /// - Parameters:
    ///   - batched: every value's fact at the batch size being run.
    ///   - options: the runner's options; the sub-runners take them with optimization, batch
    ///     tails and (for the tail) batch splitting off.
    static func find(graph: Graph, batched: [String: ValueFact], options: GraphRunner.Options) -> BatchTail? {
        let budget = options.batchTailBytes
        let nodes = graph.nodes
        guard budget > 0, nodes.count >= 2, let batchDimension = graph.inputs.first?.dimensions?.first else {
            return nil
        }
        func runtimeBytes(_ name: String) -> Int {
            guard let fact = batched[name], fact.constant == nil else { return 0 }
            return fact.shape.elementCount * fact.dtype.byteSize
        }
        // The earliest cut after which every computed value fits the budget.
        var earliest = nodes.count
        while earliest > 0, nodes[earliest - 1].outputs.allSatisfy({ $0.isEmpty || runtimeBytes($0) <= budget }) {
            earliest -= 1
        }
        guard earliest < nodes.count else { return nil }
        let graphOutputs = Set(graph.outputs.map(\.name))
        // Producer node of every value.
        var producer: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = index }
        }
        // The last reader of every value (graph outputs read "after" every node).
        var lastReader: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for input in node.inputs where !input.isEmpty { lastReader[input] = index }
        }
        for output in graphOutputs { lastReader[output] = nodes.count }
        for cut in max(1, earliest)..<nodes.count {
            // Values made before the cut and read from it on.
            var crossing: [String] = []
            var constants: [String: Tensor] = [:]
            for (name, made) in producer where made < cut {
                guard let last = lastReader[name], last >= cut else { continue }
                if let constant = batched[name]?.constant {
                    constants[name] = constant
                } else {
                    crossing.append(name)
                }
            }
            guard crossing.count == 1, let value = crossing.first, !graphOutputs.contains(value),
                let fact = batched[value], fact.shape.rank >= 1
            else { continue }
            let prefixNodes = Array(nodes[..<cut])
            let tailNodes = Array(nodes[cut...])
            let prefixReads = Set(prefixNodes.flatMap(\.inputs))
            let tailReads = Set(tailNodes.flatMap(\.inputs))
            let prefixInputs = graph.inputs.filter { prefixReads.contains($0.name) }
            let tailGraphInputs = graph.inputs.filter { tailReads.contains($0.name) || graphOutputs.contains($0.name) }
            let sampleDimensions: [Dimension] = fact.shape.dimensions.dropFirst().map { .fixed($0) }
            let crossingInfo = ValueInfo(
                name: value, dtype: fact.dtype, dimensions: [batchDimension] + sampleDimensions)
            var tailInitializers = graph.initializers
            tailInitializers.merge(constants) { first, _ in first }
            let prefixGraph = Graph(
                name: graph.name, inputs: prefixInputs, outputs: [crossingInfo], nodes: prefixNodes,
                initializers: graph.initializers, opsetImports: graph.opsetImports)
            let tailGraph = Graph(
                name: graph.name, inputs: [crossingInfo] + tailGraphInputs, outputs: graph.outputs, nodes: tailNodes,
                initializers: tailInitializers, opsetImports: graph.opsetImports)
            var prefixOptions = options
            prefixOptions.optimize = false
            prefixOptions.batchTailBytes = 0
            var tailOptions = prefixOptions
            tailOptions.splitBatches = false
            guard let prefix = try? GraphRunner(graph: prefixGraph, options: prefixOptions),
                let tail = try? GraphRunner(graph: tailGraph, options: tailOptions)
            else { continue }
            return BatchTail(
                prefix: prefix, tail: tail, cutNode: nodes[cut].name, prefixInputs: prefixInputs.map(\.name),
                tailGraphInputs: tailGraphInputs.map(\.name))
        }
        return nil
    }

    /// Runs the prefix sample by sample into the crossing tensor, then the tail on the whole
    /// batch, writing the graph's outputs into `outputs` (in place when they fit).
    func run(_ inputs: [String: Tensor], into outputs: inout [String: Tensor]) throws(GraphError) {
        var middle = spare.withLock { $0.popLast() } ?? [:]
        defer { spare.withLock { if $0.count < 4 { $0.append(middle) } } }
        var prefixFeeds: [String: Tensor] = [:]
        for name in prefixInputs { prefixFeeds[name] = inputs[name] }
        try prefix.run(prefixFeeds, into: &middle)
        var tailFeeds = middle
        for name in tailGraphInputs { tailFeeds[name] = inputs[name] }
        try tail.run(tailFeeds, into: &outputs)
    }
}
