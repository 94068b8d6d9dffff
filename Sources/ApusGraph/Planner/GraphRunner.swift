import ApusOps
import ApusTensor
import Synchronization

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

        public init(plan: PlanOptions = .init(), maxCachedPlans: Int = 8, optimize: Bool = true) {
            self.plan = plan
            self.maxCachedPlans = max(1, maxCachedPlans)
            self.optimize = optimize
        }
    }

    /// The graph as it runs (sorted, optimized).
    public let graph: Graph
    /// The runner's settings.
    public let options: Options
    let operators: [any Operator]
    private let cache = Mutex<[(key: [Shape], plan: ExecutionPlan)]>([])

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
    }

    /// Names of the declared inputs, in order.
    public var inputNames: [String] { graph.inputs.map(\.name) }

    /// Runs the graph on named inputs and returns every declared output by name.
    ///
    /// - Throws: ``GraphError`` for missing, unknown or mis-shaped inputs, and errors of the nodes.
    public func run(_ inputs: [String: Tensor]) throws(GraphError) -> [String: Tensor] {
        let ordered = try orderedInputs(inputs)
        let plan = try plan(for: ordered)
        let outputs = try plan.run(ordered)
        return Dictionary(zip(plan.outputNames, outputs), uniquingKeysWith: { first, _ in first })
    }

    /// Validates named inputs against the declarations and returns them in declaration order.
    public func orderedInputs(_ inputs: [String: Tensor]) throws(GraphError) -> [Tensor] {
        for name in inputs.keys where !graph.inputs.contains(where: { $0.name == name }) {
            throw .unknownInput(name, expected: inputNames)
        }
        var bindings: [String: Int] = [:]
        var ordered: [Tensor] = []
        for info in graph.inputs {
            guard let tensor = inputs[info.name] else { throw .missingInput(info.name) }
            if let dtype = info.dtype, dtype != tensor.dtype {
                throw .inputDTypeMismatch(info.name, expected: dtype, actual: tensor.dtype)
            }
            if let dimensions = info.dimensions {
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
                        if let bound = bindings[symbol], bound != size {
                            throw .inputShapeMismatch(
                                info.name, expected: dimensions, actual: actual,
                                reason: "'\(symbol)' is \(size) here but \(bound) elsewhere")
                        }
                        bindings[symbol] = size
                    default: break
                    }
                }
            }
            ordered.append(tensor)
        }
        return ordered
    }

    /// The plan for these inputs' shapes, made on first use and cached.
    public func plan(for inputs: [Tensor]) throws(GraphError) -> ExecutionPlan {
        let key = inputs.map(\.shape)
        if let plan = cache.withLock({ entries -> ExecutionPlan? in
            guard let index = entries.firstIndex(where: { $0.key == key }) else { return nil }
            let entry = entries.remove(at: index)
            entries.append(entry)
            return entry.plan
        }) {
            return plan
        }
        let facts = inputs.map { ValueFact(dtype: $0.dtype, shape: $0.shape) }
        let plan = try Planner.plan(graph: graph, operators: operators, inputFacts: facts, options: options.plan)
        cache.withLock { entries in
            if !entries.contains(where: { $0.key == key }) { entries.append((key, plan)) }
            if entries.count > options.maxCachedPlans { entries.removeFirst(entries.count - options.maxCachedPlans) }
        }
        return plan
    }

    /// Infers the facts of every value for the given input facts (no kernels run except folding).
    public func inferFacts(inputFacts: [ValueFact]) throws(GraphError) -> [String: ValueFact] {
        try Planner.inferFacts(graph: graph, operators: operators, inputFacts: inputFacts, options: options.plan)
    }
}
