import ApusOps
import ApusTensor
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A loaded graph, ready to run: validated, optimized, its operators built; plans are made per
/// input-shape signature on first use and cached (bounded, least recently used evicted).
///
/// A `GraphRunner` is immutable apart from its plan cache and safe to use from many threads.
public final class GraphRunner: Sendable {
    /// Settings of a runner.
    public struct Options: Sendable {
        /// Planning settings (threads, memory budget, concurrent runs).
        public var plan: PlanOptions
        /// Plans kept for distinct input-shape signatures.
        public var maxCachedPlans: Int
        /// Whether to run the graph optimizer (folding, fusion) at load.
        public var optimize: Bool
        /// Whether a batch of N may run as N runs of the batch-1 plan when the graph computes every
        /// sample on its own (``BatchSplitRule``); results are then bitwise those of batch 1.
        public var splitBatches: Bool
        /// With a split batch, the whole-batch bytes under which every value after some point of
        /// the graph must stay for the graph's end to run on the whole batch at once instead
        /// (``BatchTail``): its late layers become wide products, several percent more throughput
        /// at batch 8, but a sample's result is then no longer bitwise what it gives alone (only
        /// equal within rounding). 0, the default, keeps every layer sample by sample;
        /// ``recommendedBatchTailBytes`` is the measured choice.
        public var batchTailBytes: Int

        public init(
            plan: PlanOptions = .init(), maxCachedPlans: Int = 8, optimize: Bool = true, splitBatches: Bool = true,
            batchTailBytes: Int = 0
        ) {
            self.plan = plan
            self.maxCachedPlans = max(1, maxCachedPlans)
            self.optimize = optimize
            self.splitBatches = splitBatches
            self.batchTailBytes = max(0, batchTailBytes)
        }

        /// 4 MiB (Docs/performance.md); `APUS_BATCH_TAIL_BYTES` overrides it for experiments.
        public static let recommendedBatchTailBytes: Int = {
            if let value = EnvironmentSwitch.integer("APUS_BATCH_TAIL_BYTES") { return value }
            return 4 << 20
        }()
    }

    /// The graph as it runs (sorted, optimized).
    public let graph: Graph
    /// The runner's settings.
    public let options: Options
    let operators: [any Operator]
    private let cache = Mutex<[(key: PlanKey, plan: ExecutionPlan)]>([])
    private let valueKeyedInputs = Mutex<Set<Int>>([])
    /// Batch-split decisions by whole-batch input shapes: the split, or why there is none.
    private let splits = Mutex<[(shapes: [Shape], split: BatchSplit?, refusal: String?)]>([])
    /// Whether every declared input starts with the same batch dimension: one symbol (found
    /// nowhere else in the inputs) or one fixed size above 1.
    private let hasBatchAxis: Bool

    /// Validates and prepares `graph`.
    ///
    /// - Throws: ``GraphError`` for structural problems, unsupported operators (all listed at
    ///   once) or invalid attributes; naming the nodes concerned.
    public init(graph: Graph, options: Options = .init()) throws(GraphError) {
        do {
            try BLAS.load()
        } catch {
            throw .blasUnavailable(error.description)
        }
        var prepared = try Topology.sorted(graph)
        if options.optimize {
            prepared = try Optimizer.optimize(prepared)
        }
        self.operators = try Topology.buildOperators(for: prepared)
        self.graph = prepared
        self.options = options
        // The batch axis: every input's first dimension, the same symbol (used nowhere else) or
        // the same fixed size above 1 (a model exported at a fixed batch).
        var first: Dimension?
        var batchAxis = !prepared.inputs.isEmpty
        for info in prepared.inputs {
            guard let dimensions = info.dimensions, let leading = dimensions.first, first == nil || first == leading
            else {
                batchAxis = false
                break
            }
            switch leading {
            case .symbolic: batchAxis = batchAxis && !dimensions.dropFirst().contains(leading)
            case .fixed(let size): batchAxis = batchAxis && size > 1
            }
            first = leading
        }
        hasBatchAxis = batchAxis
    }

    /// Names of the declared inputs, in order.
    public var inputNames: [String] { graph.inputs.map(\.name) }

    /// Runs the graph on named inputs and returns every declared output by name.
    ///
    /// - Throws: ``GraphError`` for missing, unknown or mis-shaped inputs, and errors of the nodes.
    public func run(_ inputs: [String: Tensor]) throws(GraphError) -> [String: Tensor] {
        var outputs: [String: Tensor] = [:]
        try run(inputs, into: &outputs)
        return outputs
    }

    /// Runs the graph on named inputs and writes every declared output into `outputs`.
    ///
    /// An output already in `outputs` under its name, with the right shape and dtype, is
    /// overwritten in place (every copy of that tensor sees the new values); any other is
    /// replaced by a fresh tensor. Reusing one dictionary across runs of a planned shape
    /// signature allocates nothing.
    ///
    /// - Throws: ``GraphError`` for missing, unknown or mis-shaped inputs, and errors of the nodes.
    public func run(_ inputs: [String: Tensor], into outputs: inout [String: Tensor]) throws(GraphError) {
        try validateInputs(inputs)
        if let split = try batchSplit(forNamed: inputs).split {
            if let tail = split.tail {
                try tail.run(inputs, into: &outputs)
            } else {
                try split.run(named: inputs, declared: graph.inputs, into: &outputs)
            }
            return
        }
        let plan: ExecutionPlan
        if let cached = cachedPlan(forNamed: inputs) {
            plan = cached
        } else {
            plan = try self.plan(for: orderedInputs(inputs))
        }
        try plan.run(named: inputs, declared: graph.inputs, into: &outputs)
    }

    /// Why a batch of these inputs runs whole rather than sample by sample, or `nil` when it is
    /// split (see ``Options/splitBatches`` and ``BatchSplitRule``).
    ///
    /// - Throws: ``GraphError`` for invalid inputs.
    public func batchSplitRefusal(for inputs: [String: Tensor]) throws(GraphError) -> String? {
        try validateInputs(inputs)
        return try batchSplit(forNamed: inputs).refusal
    }

    /// The first node that runs on the whole batch when a batch of these inputs is split with a
    /// whole-batch end (``BatchTail``), or `nil` when it is not.
    ///
    /// - Throws: ``GraphError`` for invalid inputs.
    public func batchTailCut(for inputs: [String: Tensor]) throws(GraphError) -> String? {
        try validateInputs(inputs)
        return try batchSplit(forNamed: inputs).split?.tail?.cutNode
    }

    /// The batch split for validated inputs, decided once per input-shape signature.
    private func batchSplit(forNamed inputs: [String: Tensor]) throws(GraphError) -> (
        split: BatchSplit?, refusal: String?
    ) {
        guard options.splitBatches else { return (nil, "batch splitting is off") }
        guard hasBatchAxis, let first = graph.inputs.first, let batch = inputs[first.name]?.shape.dimensions.first
        else { return (nil, "the inputs share no batch axis") }
        guard batch > 1 else { return (nil, "a batch of one runs whole") }
        if let entry = splits.withLock({ entries in
            entries.first(where: { entry in
                zip(graph.inputs, entry.shapes).allSatisfy { info, shape in inputs[info.name]?.shape == shape }
            })
        }) {
            return (entry.split, entry.refusal)
        }
        let ordered = try orderedInputs(inputs)
        let decision = decideBatchSplit(ordered, batch: batch)
        splits.withLock { entries in
            entries.append((ordered.map(\.shape), decision.split, decision.refusal))
            if entries.count > options.maxCachedPlans { entries.removeFirst(entries.count - options.maxCachedPlans) }
        }
        return decision
    }

    private func decideBatchSplit(_ inputs: [Tensor], batch: Int) -> (split: BatchSplit?, refusal: String?) {
        guard valueKeyedInputs.withLock({ $0.isEmpty }) else { return (nil, "an input is bound by value") }
        var samples: [(shape: Shape, byteCount: Int)] = []
        var views: [Tensor] = []
        for tensor in inputs {
            var dimensions = tensor.shape.dimensions
            dimensions[0] = 1
            let shape = Shape(dimensions)
            let bytes = shape.elementCount * tensor.dtype.byteSize
            guard
                let view = try? Tensor(
                    shape: shape, dtype: tensor.dtype, storage: tensor.storage, byteOffset: tensor.byteOffset)
            else { return (nil, "cannot view one sample") }
            samples.append((shape, bytes))
            views.append(view)
        }
        let single: [String: ValueFact]
        let batched: [String: ValueFact]
        do {
            single = try inferFacts(inputFacts: views.map { ValueFact(dtype: $0.dtype, shape: $0.shape) })
            batched = try inferFacts(inputFacts: inputs.map { ValueFact(dtype: $0.dtype, shape: $0.shape) })
        } catch {
            return (nil, "shape inference failed: \(error)")
        }
        if let refusal = BatchSplitRule.refusal(graph: graph, single: single, batched: batched, batch: batch) {
            return (nil, refusal)
        }
        do {
            let plan = try plan(for: views)
            // A plan keyed by sample 0's input values would be wrong for the other samples.
            guard valueKeyedInputs.withLock({ $0.isEmpty }) else { return (nil, "an input is bound by value") }
            var split = BatchSplit(plan: plan, batch: batch, inputSamples: samples)
            split.tail = BatchTail.find(graph: graph, batched: batched, options: options)
            return (split, nil)
        } catch {
            return (nil, "no batch-1 plan: \(error)")
        }
    }

    /// Validates named inputs against the declarations and returns them in declaration order.
    public func orderedInputs(_ inputs: [String: Tensor]) throws(GraphError) -> [Tensor] {
        try validateInputs(inputs)
        var ordered: [Tensor] = []
        ordered.reserveCapacity(graph.inputs.count)
        for info in graph.inputs {
            guard let tensor = inputs[info.name] else { throw .missingInput(info.name) }
            ordered.append(tensor)
        }
        return ordered
    }

    /// Checks every named input is declared, every declared input present, and dtypes and
    /// shapes agree with the declarations (symbolic dimensions consistently bound).
    private func validateInputs(_ inputs: [String: Tensor]) throws(GraphError) {
        for name in inputs.keys where !graph.inputs.contains(where: { $0.name == name }) {
            throw .unknownInput(name, expected: inputNames)
        }
        for info in graph.inputs {
            guard let tensor = inputs[info.name] else { throw .missingInput(info.name) }
            if let dtype = info.dtype, dtype != tensor.dtype {
                throw .inputDTypeMismatch(info.name, expected: dtype, actual: tensor.dtype)
            }
            guard let dimensions = info.dimensions else { continue }
            let actual = tensor.shape.dimensions
            guard dimensions.count == actual.count else {
                throw .inputShapeMismatch(
                    info.name, expected: dimensions, actual: actual,
                    reason: "rank \(actual.count), expected \(dimensions.count)")
            }
            for (axis, (dimension, size)) in zip(dimensions, actual).enumerated() {
                switch dimension {
                case .fixed(let expected) where expected != size:
                    throw .inputShapeMismatch(
                        info.name, expected: dimensions, actual: actual,
                        reason: "dimension \(axis) is \(size), expected \(expected)")
                case .symbolic(let symbol):
                    // Symbols are few: look the first binding up among the inputs already
                    // checked instead of building a dictionary on every run.
                    if let bound = symbolBinding(symbol, in: inputs, before: info.name), bound != size {
                        throw .inputShapeMismatch(
                            info.name, expected: dimensions, actual: actual,
                            reason: "'\(symbol)' is \(size) here but \(bound) elsewhere")
                    }
                    if let earlier = zip(dimensions, actual).prefix(axis).first(where: {
                        if case .symbolic(symbol) = $0.0 { true } else { false }
                    }), earlier.1 != size {
                        throw .inputShapeMismatch(
                            info.name, expected: dimensions, actual: actual,
                            reason: "'\(symbol)' is \(size) here but \(earlier.1) elsewhere")
                    }
                default: break
                }
            }
        }
    }

    /// The size `symbol` has in the first declared input before `name` that uses it.
    private func symbolBinding(_ symbol: String, in inputs: [String: Tensor], before name: String) -> Int? {
        for info in graph.inputs {
            if info.name == name { return nil }
            guard let dimensions = info.dimensions, let tensor = inputs[info.name] else { continue }
            for (dimension, size) in zip(dimensions, tensor.shape.dimensions) {
                if case .symbolic(symbol) = dimension { return size }
            }
        }
        return nil
    }

    /// The cached plan for named (already validated) inputs, found without building a key.
    private func cachedPlan(forNamed inputs: [String: Tensor]) -> ExecutionPlan? {
        let keyed = valueKeyedInputs.withLock { $0 }
        return cache.withLock { entries -> ExecutionPlan? in
            guard
                let index = entries.firstIndex(where: {
                    $0.key.matches(inputs, declared: graph.inputs, valueKeyed: keyed)
                })
            else { return nil }
            let entry = entries.remove(at: index)
            entries.append(entry)
            return entry.plan
        }
    }

    /// The plan for these inputs' shapes, made on first use and cached.
    ///
    /// Small inputs that decide shapes (a `Reshape` target fed by the caller, say) are
    /// treated as constants: the first time planning needs such an input's value, the runner
    /// learns to key plans by that input's value as well as its shape.
    public func plan(for inputs: [Tensor]) throws(GraphError) -> ExecutionPlan {
        let keyed = valueKeyedInputs.withLock { $0 }
        let key = PlanKey(inputs: inputs, valueKeyed: keyed)
        if let plan = cache.withLock({ entries -> ExecutionPlan? in
            guard let index = entries.firstIndex(where: { $0.key == key }) else { return nil }
            let entry = entries.remove(at: index)
            entries.append(entry)
            return entry.plan
        }) {
            return plan
        }
        let plan: ExecutionPlan
        do {
            plan = try makePlan(for: inputs, valueKeyed: keyed)
        } catch GraphError.node(let name, let opType, .notConstant(let position)) {
            // Retry once with every small input bound by value.
            let candidates = Set(
                inputs.indices.filter {
                    inputs[$0].elementCount <= Self.maxValueKeyedElements
                })
            guard !candidates.isSubset(of: keyed) else {
                throw .node(name: name, opType: opType, .notConstant(input: position))
            }
            let widened = keyed.union(candidates)
            valueKeyedInputs.withLock { $0.formUnion(candidates) }
            return try self.plan(for: inputs, widenedTo: widened)
        }
        store(plan, for: key)
        return plan
    }

    /// Inputs of at most this many elements may be bound by value when planning needs them.
    public static let maxValueKeyedElements = 64

    private func plan(for inputs: [Tensor], widenedTo keyed: Set<Int>) throws(GraphError) -> ExecutionPlan {
        let plan = try makePlan(for: inputs, valueKeyed: keyed)
        store(plan, for: PlanKey(inputs: inputs, valueKeyed: keyed))
        return plan
    }

    private func makePlan(for inputs: [Tensor], valueKeyed: Set<Int>) throws(GraphError) -> ExecutionPlan {
        var facts: [ValueFact] = []
        for (index, tensor) in inputs.enumerated() {
            // Bound inputs are copied: the plan outlives the caller's tensor, which may be reused.
            let constant = valueKeyed.contains(index) ? try? tensor.copy() : nil
            facts.append(ValueFact(dtype: tensor.dtype, shape: tensor.shape, constant: constant))
        }
        return try Planner.plan(graph: graph, operators: operators, inputFacts: facts, options: options.plan)
    }

    private func store(_ plan: ExecutionPlan, for key: PlanKey) {
        cache.withLock { entries in
            if !entries.contains(where: { $0.key == key }) { entries.append((key, plan)) }
            if entries.count > options.maxCachedPlans { entries.removeFirst(entries.count - options.maxCachedPlans) }
        }
    }

    /// Infers the facts of every value for the given input facts (no kernels run except folding).
    public func inferFacts(inputFacts: [ValueFact]) throws(GraphError) -> [String: ValueFact] {
        try Planner.inferFacts(graph: graph, operators: operators, inputFacts: inputFacts, options: options.plan)
    }
}

/// What a plan depends on: every input's shape, and the values of inputs bound by value.
struct PlanKey: Hashable, Sendable {
    var shapes: [Shape]
    var values: [Int: [UInt8]]
    var valueKeyed: Set<Int>

    init(inputs: [Tensor], valueKeyed: Set<Int>) {
        shapes = inputs.map(\.shape)
        var values: [Int: [UInt8]] = [:]
        for index in valueKeyed where index < inputs.count {
            let tensor = inputs[index]
            values[index] = Array(UnsafeRawBufferPointer(start: tensor.rawPointer, count: tensor.byteCount))
        }
        self.values = values
        self.valueKeyed = valueKeyed
    }

    /// Whether named inputs (declared as `declared`) have this key, compared in place so that a
    /// cache hit allocates nothing.
    func matches(_ inputs: [String: Tensor], declared: [ValueInfo], valueKeyed: Set<Int>) -> Bool {
        guard self.valueKeyed == valueKeyed, shapes.count == declared.count else { return false }
        for (index, info) in declared.enumerated() {
            guard let tensor = inputs[info.name], tensor.shape == shapes[index] else { return false }
            if let bytes = values[index] {
                let same = bytes.withUnsafeBytes { stored in
                    stored.elementsEqual(UnsafeRawBufferPointer(start: tensor.rawPointer, count: tensor.byteCount))
                }
                if !same { return false }
            }
        }
        return true
    }
}
