import ApusOps
import ApusTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Settings of planning and running.
public struct PlanOptions: Sendable {
    /// Intra-op threads kernels may use.
    public var threadCount: Int
    /// Upper bound for the arena, the workspace and constants folded at plan time, in bytes.
    public var memoryBudget: Int
    /// At most this many runs of one plan execute at once; further callers wait.
    public var maxConcurrentRuns: Int
    /// Whether a 1 × 1 convolution and the stride-2 depthwise convolution that alone reads it run
    /// as one step (``ExpandDepthwise``; the same results, bit for bit). On unless the environment
    /// sets `APUS_JOIN_EXPANSIONS=0`.
    public var joinsExpansions: Bool
    /// Whether a `Mul` scaling a map's channels (`x · s`, `s` of shape [N or 1, C, 1, 1], as a
    /// squeeze-and-excitation block ends) whose only reader is a 1 × 1 convolution on the packed
    /// kernel runs as one step that scales the weights' columns instead of the map
    /// (``ScaledInputConv``), when the weights are smaller than one image's map or the convolution
    /// splits its reduction. Within rounding of the separate steps, not the same bits (the same
    /// bits when the split scales the input). On unless the environment sets
    /// `APUS_JOIN_SCALED_INPUTS=0`.
    public var joinsScaledInputs: Bool
    /// Whether a convolution on the direct (stem) kernel and the max pooling that alone reads its
    /// output run as one step, pooling each worker's planes while they are in cache
    /// (``DirectConvMaxPool``; the same bits). On unless the environment sets
    /// `APUS_JOIN_STEM_POOL=0`.
    public var joinsStemPools: Bool
    /// Whether a step on the packed GEMM kernel fetches the weights of a memory-bound product a
    /// few steps later into the cache while it computes (``ReadAhead``, ``Planner/assignReadAheads(_:)``;
    /// prefetches only, the same bits). On unless the environment sets `APUS_READ_AHEAD=0`.
    public var readsAhead: Bool
    /// Whether a depthwise convolution on the AVX-512 kernel and the `GlobalAveragePool` of its
    /// output right after it run as one step that averages each task's planes while they are in
    /// cache (``ConvGlobalPool``; the same bits). On unless the environment sets
    /// `APUS_JOIN_GLOBAL_POOL=0`.
    public var joinsGlobalPools: Bool
    /// Whether the packed weights of the convolutions that stream them once per run
    /// (``Conv2DPlan/streamsWeights``: squeeze-and-excitation products) are copied side by side
    /// onto huge pages (``Planner/placeStreamedWeights(_:)``; the same bits). On unless the
    /// environment sets `APUS_COPY_STREAMED_WEIGHTS=0`.
    public var copiesStreamedWeights: Bool

    public init(
        threadCount: Int = 1, memoryBudget: Int = 16 << 30, maxConcurrentRuns: Int = 4,
        joinsExpansions: Bool = ExpandDepthwise.isEnabledByDefault,
        joinsScaledInputs: Bool = PlanOptions.scaledInputsByDefault,
        joinsStemPools: Bool = PlanOptions.stemPoolsByDefault,
        readsAhead: Bool = ReadAhead.isEnabledByDefault,
        joinsGlobalPools: Bool = PlanOptions.globalPoolsByDefault,
        copiesStreamedWeights: Bool = PlanOptions.streamedWeightsCopiedByDefault
    ) {
        self.threadCount = max(1, threadCount)
        self.memoryBudget = memoryBudget
        self.maxConcurrentRuns = max(1, maxConcurrentRuns)
        self.joinsExpansions = joinsExpansions
        self.joinsScaledInputs = joinsScaledInputs
        self.joinsStemPools = joinsStemPools
        self.readsAhead = readsAhead
        self.joinsGlobalPools = joinsGlobalPools
        self.copiesStreamedWeights = copiesStreamedWeights
    }

    /// `APUS_COPY_STREAMED_WEIGHTS=0` turns ``copiesStreamedWeights`` off by default.
    public static let streamedWeightsCopiedByDefault = !EnvironmentSwitch.isOff("APUS_COPY_STREAMED_WEIGHTS")

    /// `APUS_JOIN_GLOBAL_POOL=0` turns ``joinsGlobalPools`` off by default.
    public static let globalPoolsByDefault = !EnvironmentSwitch.isOff("APUS_JOIN_GLOBAL_POOL")

    /// `APUS_JOIN_STEM_POOL=0` turns ``joinsStemPools`` off by default.
    public static let stemPoolsByDefault = !EnvironmentSwitch.isOff("APUS_JOIN_STEM_POOL")

    /// `APUS_JOIN_SCALED_INPUTS=0` turns ``joinsScaledInputs`` off by default.
    public static let scaledInputsByDefault = !EnvironmentSwitch.isOff("APUS_JOIN_SCALED_INPUTS")
}

/// Turns a validated, topologically sorted graph and concrete input facts into an
/// ``ExecutionPlan``: infers every shape, folds what is constant, specializes kernels and assigns
/// arena offsets by liveness.
public enum Planner {
    /// Infers the fact of every value reachable from the outputs, folding constants. Useful on its
    /// own for shape inference (`inspect`, optimizer probes).
    ///
    /// - Parameters:
    ///   - graph: a graph whose nodes are in topological order.
    ///   - operators: the operator of each node, in the same order.
    ///   - inputFacts: one fact per declared graph input.
    public static func inferFacts(
        graph: Graph, operators: [any Operator], inputFacts: [ValueFact], options: PlanOptions = .init()
    ) throws(GraphError) -> [String: ValueFact] {
        var state = try State(graph: graph, inputFacts: inputFacts, options: options)
        for index in graph.nodes.indices where state.needed[index] {
            _ = try state.visit(node: graph.nodes[index], op: operators[index], makeStep: false)
        }
        return state.facts
    }

    /// Makes a plan for the given input facts.
    public static func plan(
        graph: Graph, operators: [any Operator], inputFacts: [ValueFact], options: PlanOptions
    ) throws(GraphError) -> ExecutionPlan {
        var state = try State(graph: graph, inputFacts: inputFacts, options: options)
        var pending: [(node: Node, op: any Operator)] = []
        for index in graph.nodes.indices where state.needed[index] {
            let node = graph.nodes[index]
            if let op = try state.visit(node: node, op: operators[index], makeStep: true) {
                pending.append((node, op))
            }
        }
        if options.joinsExpansions {
            pending = joinExpansions(
                pending, graphOutputs: Set(graph.outputs.map(\.name)), threadCount: options.threadCount)
        }
        if options.joinsStemPools {
            pending = joinStemPools(pending, graphOutputs: Set(graph.outputs.map(\.name)))
        }
        if options.joinsScaledInputs {
            pending = joinScaledInputs(pending, facts: state.facts, graphOutputs: Set(graph.outputs.map(\.name)))
        }
        if options.joinsGlobalPools {
            pending = joinGlobalPools(pending, graphOutputs: Set(graph.outputs.map(\.name)))
        }
        // Liveness: the last step reading each runtime value; graph outputs live to the end.
        var lastUse: [String: Int] = [:]
        for (stepIndex, step) in pending.enumerated() {
            for input in step.node.inputs where !input.isEmpty { lastUse[input] = stepIndex }
        }
        let outputNames = Set(graph.outputs.map(\.name))
        var allocator = ArenaAllocator()
        var arenaIndex: [String: Int] = [:]
        var arenaValues: [ArenaValue] = []
        var steps: [Step] = []
        var workspace = 0
        let inputIndex = Dictionary(graph.inputs.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (stepIndex, entry) in pending.enumerated() {
            var outputs: [Int] = []
            let outputKeys = valueKeys(ofOutputsOf: entry.node)
            for (name, key) in zip(entry.node.outputs, outputKeys) {
                // Omitted optional outputs still get a buffer of their inferred shape; it is freed at once.
                guard let fact = state.facts[key] else {
                    if name.isEmpty { continue }
                    throw .limitExceeded("no fact for output '\(key)' of node '\(entry.node.name)'")
                }
                let bytes = fact.shape.elementCount * fact.dtype.byteSize
                let offset = allocator.allocate(bytes)
                arenaIndex[key] = arenaValues.count
                outputs.append(arenaValues.count)
                arenaValues.append(
                    ArenaValue(name: key, shape: fact.shape, dtype: fact.dtype, offset: offset, byteCount: bytes))
                if lastUse[key] == nil && !outputNames.contains(key) { lastUse[key] = stepIndex }
            }
            var slots: [Slot?] = []
            for input in entry.node.inputs {
                if input.isEmpty {
                    slots.append(nil)
                } else if let constant = state.facts[input]?.constant {
                    slots.append(.constant(constant))
                } else if let index = arenaIndex[input] {
                    slots.append(.arena(index))
                } else if let index = inputIndex[input] {
                    slots.append(.input(index))
                } else {
                    throw .undefinedValue(input, node: entry.node.name)
                }
            }
            let inputFacts = entry.node.inputs.map { $0.isEmpty ? nil : state.facts[$0] }
            workspace = max(workspace, entry.op.workspaceByteCount(for: inputFacts, threadCount: options.threadCount))
            steps.append(
                Step(
                    nodeName: entry.node.name, opType: entry.node.opType, op: entry.op, inputs: slots, outputs: outputs)
            )
            // Free values whose last reader is this step (after the outputs were placed, so an
            // output never aliases an input of the same step).
            for name in Set(entry.node.inputs + outputKeys)
            where lastUse[name] == stepIndex && !outputNames.contains(name) {
                if let index = arenaIndex[name] {
                    allocator.free(offset: arenaValues[index].offset, byteCount: arenaValues[index].byteCount)
                }
            }
        }
        if options.copiesStreamedWeights { steps = placeStreamedWeights(steps) }
        if options.readsAhead { steps = assignReadAheads(steps) }
        let needed = allocator.highWater + workspace
        guard needed <= options.memoryBudget - state.foldedBytes else {
            throw .memoryBudgetExceeded(needed: needed + state.foldedBytes, budget: options.memoryBudget, at: "plan")
        }
        var outputSlots: [Slot] = []
        var outputFacts: [ValueFact] = []
        for output in graph.outputs {
            guard let fact = state.facts[output.name] else { throw .outputNotProduced(output.name) }
            outputFacts.append(fact)
            if let constant = fact.constant {
                outputSlots.append(.constant(constant))
            } else if let index = arenaIndex[output.name] {
                outputSlots.append(.arena(index))
            } else if let index = inputIndex[output.name] {
                outputSlots.append(.input(index))
            } else {
                throw .outputNotProduced(output.name)
            }
        }
        return ExecutionPlan(
            steps: steps, arenaValues: arenaValues, outputs: outputSlots, outputNames: graph.outputs.map(\.name),
            outputFacts: outputFacts, arenaByteCount: allocator.highWater, workspaceByteCount: workspace,
            threadCount: options.threadCount, maxConcurrentRuns: options.maxConcurrentRuns)
    }

    /// Shape inference and constant folding over the needed nodes.
    /// A step of the plan being made: its node and its specialized operator.
    typealias PendingStep = (node: Node, op: any Operator)

    /// Replaces each pair of adjacent steps whose second alone reads the first's only output (as
    /// its first input; not a graph output) by what `join` makes of them, keeping the pair when
    /// it returns `nil`. With `soleReader` false the second need only read that output first (a
    /// join that keeps the output for its other readers). The planner's joins differ only in
    /// what they accept.
    static func joinPairs(
        _ pending: [PendingStep], graphOutputs: Set<String>, soleReader: Bool = true,
        _ join: (PendingStep, PendingStep) -> PendingStep?
    ) -> [PendingStep] {
        var readers: [String: Int] = [:]
        for entry in pending {
            for input in entry.node.inputs where !input.isEmpty { readers[input, default: 0] += 1 }
        }
        var result: [PendingStep] = []
        var index = 0
        while index < pending.count {
            let first = pending[index]
            if index + 1 < pending.count, first.node.outputs.count == 1, let value = first.node.outputs.first,
                !value.isEmpty, !soleReader || (readers[value] == 1 && !graphOutputs.contains(value)),
                pending[index + 1].node.inputs.first == value, let joined = join(first, pending[index + 1])
            {
                result.append(joined)
                index += 2
                continue
            }
            result.append(first)
            index += 1
        }
        return result
    }

    /// Joins each convolution whose planes its kernel can average in cache
    /// (``Conv2DPlan/poolsPlanesInCache``) with the `GlobalAveragePool` of its output that comes
    /// right after it into one ``ConvGlobalPool`` step named `conv+pool`, with both outputs (the
    /// map keeps its other readers).
    static func joinGlobalPools(_ pending: [PendingStep], graphOutputs: Set<String>) -> [PendingStep] {
        joinPairs(pending, graphOutputs: graphOutputs, soleReader: false) { first, second in
            guard let conv = first.op as? Conv, conv.plan?.poolsPlanesInCache == true, second.node.domain.isEmpty,
                second.node.opType == "GlobalAveragePool", let pool = second.op as? GlobalPool, !pool.max,
                second.node.inputs.count == 1, second.node.outputs.count == 1
            else { return nil }
            let node = Node(
                name: first.node.name + "+" + second.node.name, opType: "ConvGlobalPool", domain: Node.apusDomain,
                inputs: first.node.inputs, outputs: first.node.outputs + second.node.outputs)
            return (node, ConvGlobalPool(conv: conv))
        }
    }

    /// The input `index` of `node`, `""` when absent.
    static func input(_ node: Node, _ index: Int) -> String { index < node.inputs.count ? node.inputs[index] : "" }

    /// Joins each 1 × 1 convolution whose output only the next step, a stride-2 depthwise
    /// convolution, reads into one ``ExpandDepthwiseConv`` step (``ExpandDepthwise``): the step
    /// is named `expansion+depthwise`, reads the expansion's input, weights and bias and the
    /// depthwise weights and bias, and writes the depthwise output; the expanded map is gone.
    static func joinExpansions(_ pending: [PendingStep], graphOutputs: Set<String>, threadCount: Int) -> [PendingStep] {
        joinPairs(pending, graphOutputs: graphOutputs) { first, second in
            guard let expansion = first.op as? Conv, let depthwise = second.op as? Conv,
                let joined = ExpandDepthwiseConv(
                    expansion: expansion, expansionHasResidual: !input(first.node, 3).isEmpty, depthwise: depthwise,
                    depthwiseHasResidual: !input(second.node, 3).isEmpty, threadCount: threadCount)
            else { return nil }
            let node = Node(
                name: first.node.name + "+" + second.node.name, opType: "ExpandDepthwiseConv",
                domain: Node.apusDomain,
                inputs: [
                    input(first.node, 0), input(first.node, 1), input(first.node, 2), input(second.node, 1),
                    input(second.node, 2),
                ], outputs: second.node.outputs)
            return (node, joined)
        }
    }

    /// Joins each convolution on the direct kernel without a residual whose output only the next
    /// step, a max pooling, reads into one ``DirectConvMaxPoolStep`` named `conv+pool`.
    static func joinStemPools(_ pending: [PendingStep], graphOutputs: Set<String>) -> [PendingStep] {
        joinPairs(pending, graphOutputs: graphOutputs) { first, second in
            guard let conv = first.op as? Conv, let plan = conv.plan, input(first.node, 3).isEmpty,
                let pool = second.op as? Pool, pool.kind == .max, let geometry = pool.planned,
                second.node.outputs.count == 1, let joined = DirectConvMaxPool(conv: plan, pool: geometry)
            else { return nil }
            let node = Node(
                name: first.node.name + "+" + second.node.name, opType: "DirectConvMaxPool", domain: Node.apusDomain,
                inputs: Array(first.node.inputs.prefix(3)), outputs: second.node.outputs)
            return (node, DirectConvMaxPoolStep(conv: conv, joined: joined))
        }
    }

    /// Joins each `Mul(x, s)` that scales the channels of x ([N, C, H, W]) by s ([N or 1, C, 1, 1])
    /// and whose only reader, the next step, is a 1 × 1 convolution on the packed kernel, into one
    /// ``ScaledInputConv`` step named `mul+conv`, when the packed weights are no larger than one
    /// image of x or the convolution splits its reduction (each half then scales what it reads):
    /// it reads x, s and the convolution's other inputs, and x · s is never stored.
    static func joinScaledInputs(
        _ pending: [PendingStep], facts: [String: ValueFact], graphOutputs: Set<String>
    ) -> [PendingStep] {
        joinPairs(pending, graphOutputs: graphOutputs) { first, second in
            guard first.node.domain.isEmpty, first.node.opType == "Mul", first.node.inputs.count == 2,
                let scaled = first.node.outputs.first, let conv = second.op as? Conv, let plan = conv.plan,
                plan.scalesInputThroughWeights,
                let (x, s) = channelScaling(first.node.inputs[0], first.node.inputs[1], facts: facts)
                    ?? channelScaling(first.node.inputs[1], first.node.inputs[0], facts: facts),
                let xFact = facts[x], xFact.shape == facts[scaled]?.shape,
                plan.splitsReduction || plan.scalesWeightsCheaper
            else { return nil }
            let node = Node(
                name: first.node.name + "+" + second.node.name, opType: "ScaledInputConv", domain: Node.apusDomain,
                inputs: [x, s] + second.node.inputs.dropFirst().prefix(3), outputs: second.node.outputs)
            return (node, ScaledInputConv(conv: conv))
        }
    }

    /// `(x, s)` when x is a float32 map [N, C, H, W] computed at run time and s holds one float32
    /// per channel, [N, C, 1, 1] or [1, C, 1, 1].
    static func channelScaling(_ x: String, _ s: String, facts: [String: ValueFact]) -> (String, String)? {
        guard let xFact = facts[x], let sFact = facts[s], xFact.constant == nil, xFact.dtype == .float32,
            sFact.dtype == .float32, xFact.shape.rank == 4, sFact.shape.rank == 4
        else { return nil }
        let (xs, ss) = (xFact.shape.dimensions, sFact.shape.dimensions)
        guard ss[0] == xs[0] || ss[0] == 1, ss[1] == xs[1], ss[2] == 1, ss[3] == 1, xs[2] * xs[3] > 1 else {
            return nil
        }
        return (x, s)
    }

    struct State {
        var facts: [String: ValueFact] = [:]
        var needed: [Bool]
        var foldedBytes = 0
        let options: PlanOptions

        init(graph: Graph, inputFacts: [ValueFact], options: PlanOptions) throws(GraphError) {
            self.options = options
            precondition(inputFacts.count == graph.inputs.count, "one fact per graph input")
            for (name, tensor) in graph.initializers { facts[name] = ValueFact(constant: tensor) }
            for (info, fact) in zip(graph.inputs, inputFacts) { facts[info.name] = fact }
            // Dead-node removal: only nodes that (transitively) feed a graph output are planned.
            var producer: [String: Int] = [:]
            for (index, node) in graph.nodes.enumerated() {
                for output in node.outputs where !output.isEmpty { producer[output] = index }
            }
            needed = [Bool](repeating: false, count: graph.nodes.count)
            var stack = graph.outputs.compactMap { producer[$0.name] }
            while let index = stack.popLast() {
                if needed[index] { continue }
                needed[index] = true
                for input in graph.nodes[index].inputs where !input.isEmpty {
                    if let source = producer[input], !needed[source] { stack.append(source) }
                }
            }
        }

        /// Infers a node's outputs; folds it when all its inputs are constant. Returns the
        /// specialized operator when the node must run at inference time.
        mutating func visit(node: Node, op: any Operator, makeStep: Bool) throws(GraphError) -> (any Operator)? {
            let inputFacts: [ValueFact?] = node.inputs.map { $0.isEmpty ? nil : facts[$0] }
            for (name, fact) in zip(node.inputs, inputFacts) where !name.isEmpty && fact == nil {
                throw .undefinedValue(name, node: node.name)
            }
            let outputFacts: [ValueFact]
            do {
                outputFacts = try op.outputFacts(inputFacts)
            } catch {
                throw .node(name: node.name, opType: node.opType, error)
            }
            for (position, name) in node.outputs.enumerated() where !name.isEmpty && position >= outputFacts.count {
                throw .node(
                    name: node.name, opType: node.opType,
                    .unsupported("output \(position) ('\(name)') is not produced by this implementation"))
            }
            for fact in outputFacts {
                guard let count = try? fact.shape.checkedElementCount(),
                    count.multipliedReportingOverflow(by: fact.dtype.byteSize).overflow == false,
                    count * fact.dtype.byteSize <= options.memoryBudget
                else {
                    throw .memoryBudgetExceeded(
                        needed: Int.max, budget: options.memoryBudget, at: "node '\(node.name)' output \(fact.shape)")
                }
            }
            let allConstant =
                outputFacts.allSatisfy { $0.constant != nil }
            let inputsConstant = inputFacts.allSatisfy { $0 == nil || $0?.constant != nil }
            if allConstant || inputsConstant {
                var outputs: [Tensor] = []
                if allConstant {
                    outputs = outputFacts.compactMap(\.constant)
                } else {
                    for fact in outputFacts {
                        let bytes = fact.shape.elementCount * fact.dtype.byteSize
                        foldedBytes += bytes
                        guard foldedBytes <= options.memoryBudget else {
                            throw .memoryBudgetExceeded(
                                needed: foldedBytes, budget: options.memoryBudget, at: "node '\(node.name)'")
                        }
                        do {
                            outputs.append(try Tensor(zeros: fact.shape, dtype: fact.dtype))
                        } catch {
                            throw .node(name: node.name, opType: node.opType, .tensor(error))
                        }
                    }
                    do {
                        try op.run(
                            inputFacts.map { $0?.constant }, outputs: outputs,
                            context: ComputeContext(threadCount: options.threadCount))
                    } catch {
                        throw .node(name: node.name, opType: node.opType, error)
                    }
                }
                for (name, tensor) in zip(node.outputs, outputs) where !name.isEmpty {
                    facts[name] = ValueFact(constant: tensor)
                }
                return nil
            }
            for (position, key) in valueKeys(ofOutputsOf: node).enumerated() {
                if position < outputFacts.count {
                    var fact = outputFacts[position]
                    fact.constant = nil
                    facts[key] = fact
                }
            }
            guard makeStep else { return nil }
            do {
                return try op.specialized(for: inputFacts, threadCount: options.threadCount)
            } catch {
                throw .node(name: node.name, opType: node.opType, error)
            }
        }
    }
}

/// The names under which a node's outputs are tracked while planning: the declared names, with
/// omitted optional outputs given a private name so they still get a (short-lived) buffer.
func valueKeys(ofOutputsOf node: Node) -> [String] {
    node.outputs.enumerated().map { position, name in name.isEmpty ? "\(node.name)#unused\(position)" : name }
}

/// First-fit-by-size allocator of arena offsets (64-byte aligned) with coalescing free blocks.
struct ArenaAllocator {
    private var freeBlocks: [(offset: Int, size: Int)] = []
    private(set) var end = 0
    private(set) var highWater = 0

    mutating func allocate(_ byteCount: Int) -> Int {
        let size = max(64, (byteCount + 63) / 64 * 64)
        var best: Int?
        for (index, block) in freeBlocks.enumerated() where block.size >= size {
            if best == nil || block.size < freeBlocks[best!].size { best = index }
        }
        if let best {
            let block = freeBlocks[best]
            if block.size == size {
                freeBlocks.remove(at: best)
            } else {
                freeBlocks[best] = (block.offset + size, block.size - size)
            }
            return block.offset
        }
        // Grow: reuse a free block at the end of the arena if there is one.
        if let last = freeBlocks.indices.last, freeBlocks[last].offset + freeBlocks[last].size == end {
            let offset = freeBlocks[last].offset
            freeBlocks.remove(at: last)
            end = offset + size
            highWater = max(highWater, end)
            return offset
        }
        let offset = end
        end += size
        highWater = max(highWater, end)
        return offset
    }

    mutating func free(offset: Int, byteCount: Int) {
        let size = max(64, (byteCount + 63) / 64 * 64)
        var index = freeBlocks.firstIndex { $0.offset > offset } ?? freeBlocks.count
        freeBlocks.insert((offset, size), at: index)
        if index + 1 < freeBlocks.count,
            freeBlocks[index].offset + freeBlocks[index].size == freeBlocks[index + 1].offset
        {
            freeBlocks[index].size += freeBlocks[index + 1].size
            freeBlocks.remove(at: index + 1)
        }
        if index > 0, freeBlocks[index - 1].offset + freeBlocks[index - 1].size == freeBlocks[index].offset {
            freeBlocks[index - 1].size += freeBlocks[index].size
            freeBlocks.remove(at: index)
            index -= 1
        }
    }
}

extension Planner {
    /// How many steps before a memory-bound product ``assignReadAheads(_:)`` looks for one to
    /// read its weights ahead (mobilenet_v2: the last 1 × 1 convolution, the global pooling and
    /// the reshape come before the classifier).
    static let readAheadReach = 4

    /// The most a read-ahead host's packed weights and the weights it fetches may add up to:
    /// 8 MiB. Both stream through L2 into L3 while the host runs, and what was fetched must still
    /// be there when the product reads it: mobilenet_v2's 1.6 + 5.1 MB did (classifier 0.33 →
    /// 0.24 ms), resnet50's 4 + 8 MB did not (classifier unchanged, its host 1.06 → 1.16 ms).
    static let readAheadTrafficBytes = 8 << 20

    /// Gives the nearest step within ``readAheadReach`` before each product with streamed
    /// weights (``Gemm/streamedB``) that computes on the packed GEMM kernel the job of fetching
    /// those weights into the cache (``Step/readAhead``), unless the two together pass
    /// ``readAheadTrafficBytes``. mobilenet_v2's classifier, 1000 × 1280,
    /// read 0.28 ms per run from DRAM; its last 1 × 1 convolution (0.38 ms of multiply-adds)
    /// now brings the weights in meanwhile (Docs/performance.md).
    static func assignReadAheads(_ steps: [Step]) -> [Step] {
        var steps = steps
        for index in steps.indices {
            guard let gemm = steps[index].op as? Gemm, let weights = gemm.streamedB else { continue }
            for host in stride(from: index - 1, through: max(0, index - readAheadReach), by: -1) {
                guard steps[host].readAhead == nil, let conv = steps[host].op as? Conv, let plan = conv.plan,
                    plan.computesOnPackedKernel
                else { continue }
                if plan.packedWeightFloatCount * 4 + weights.byteCount > readAheadTrafficBytes { break }
                steps[host].readAhead = weights
                break
            }
        }
        return steps
    }
}

extension Planner {
    /// The smallest packed weights ``placeStreamedWeights(_:)`` moves: 16 KiB (fewer pages than
    /// that cost little to walk).
    static let streamedWeightsMinimumBytes = 16 << 10

    /// The least that ``placeStreamedWeights(_:)`` copies: 1 MiB (the copy takes at least one
    /// 2 MiB huge page).
    static let streamedWeightsCopyMinimumBytes = 1 << 20

    /// Copies the packed weights of the convolutions that stream them (``Conv2DPlan/streamsWeights``,
    /// from ``streamedWeightsMinimumBytes``) side by side into one allocation on huge pages (of
    /// at least ``TensorStorage/hugePageBytes``), when they add up to
    /// ``streamedWeightsCopyMinimumBytes``. Each such product reads its 16–220 KB once per run
    /// from memory, and from an artifact's mapping or a heap block of its own on 4 KiB pages that
    /// is a page walk per 4 KiB and a hardware prefetcher that starts over at every page
    /// (efficientnet_b0: 2.5 MB in 20 products; Docs/performance.md). Same values, same bits. The
    /// pages of prepacked originals in a mapped artifact are released, as ``Conv`` does for
    /// weights its plan copied.
    static func placeStreamedWeights(_ steps: [Step]) -> [Step] {
        var steps = steps
        var placed: [(index: Int, conv: Conv, plan: Conv2DPlan, offset: Int)] = []
        var total = 0
        for index in steps.indices {
            guard let conv = steps[index].op as? Conv, let plan = conv.plan, plan.streamsWeights else { continue }
            let bytes = plan.packedWeightFloatCount * MemoryLayout<Float>.stride
            guard bytes >= streamedWeightsMinimumBytes else { continue }
            placed.append((index, conv, plan, total))
            total += (bytes + 63) / 64 * 64
        }
        guard total >= streamedWeightsCopyMinimumBytes,
            let storage = try? TensorStorage(byteCount: max(total, TensorStorage.hugePageBytes))
        else { return steps }
        for (index, conv, plan, offset) in placed {
            var conv = conv
            let destination = (storage.baseAddress + offset).assumingMemoryBound(to: Float.self)
            conv.plan = plan.movingPackedWeights(to: destination, owner: storage)
            steps[index].op = conv
            // The plan reads the copy from now on: a mapped file's pages of prepacked weights can go.
            let prepacked = PrepackWeights.inputIndex
            if plan.usesPrepackedWeights, prepacked < steps[index].inputs.count,
                case .constant(let original) = steps[index].inputs[prepacked]
            {
                original.releaseResidentPages()
            }
        }
        return steps
    }
}
