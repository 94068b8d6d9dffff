import ApusOps
import ApusTensor

/// Runs a batch of N as N runs of the batch-1 plan, when the graph treats every sample on its own.
///
/// Whole-batch tensors of a network's early layers outgrow the caches at batch 8 (mobilenet_v2's
/// first expansion output is 4.8 MB per image), so a batch-1 plan run per sample is faster, its
/// arena is N times smaller, and a sample's result is bitwise the same whether it came alone or
/// in a batch. With more than one thread, samples run concurrently, one thread each, on arenas
/// borrowed from the batch-1 plan's pool (only as many as are idle: a run never waits for a second
/// arena, so concurrent callers cannot deadlock).
///
/// Whether a graph may be split is decided by ``BatchSplitRule`` from the facts of the batch-1
/// and batch-N signatures; when it may not, the batch runs whole as before. The batch is the first
/// dimension every input shares: a symbol, or a fixed size for models exported at a fixed batch
/// (whose constants then decide: a `Reshape` to a literal `[4, -1]` does not plan at batch 1).
struct BatchSplit: Sendable {
    /// The batch-1 plan.
    let plan: ExecutionPlan
    /// The samples in the batch.
    let batch: Int
    /// Each declared input's shape for one sample, and its bytes per sample.
    let inputSamples: [(shape: Shape, byteCount: Int)]
    /// Each output's whole-batch shape, and its bytes per sample.
    let outputs: [(shape: Shape, byteCount: Int)]
    /// The graph's end run on the whole batch instead, when one qualifies: then the samples run
    /// only up to its cut.
    var tail: BatchTail?

    init(plan: ExecutionPlan, batch: Int, inputSamples: [(shape: Shape, byteCount: Int)]) {
        self.plan = plan
        self.batch = batch
        self.inputSamples = inputSamples
        outputs = plan.outputFacts.map { fact in
            var dimensions = fact.shape.dimensions
            dimensions[0] = batch
            return (Shape(dimensions), fact.shape.elementCount * fact.dtype.byteSize)
        }
    }

    /// Runs every sample of the (validated) named inputs and writes the whole-batch outputs into
    /// `outputs`, in place when a tensor of the right shape and dtype is there.
    func run(named inputs: [String: Tensor], declared: [ValueInfo], into results: inout [String: Tensor])
        throws(GraphError)
    {
        for (index, output) in outputs.enumerated() {
            let name = plan.outputNames[index]
            let dtype = plan.outputFacts[index].dtype
            if let target = results[name], target.shape == output.shape, target.dtype == dtype { continue }
            do {
                results[name] = try Tensor(zeros: output.shape, dtype: dtype)
            } catch {
                throw .memoryBudgetExceeded(
                    needed: output.shape.elementCount * dtype.byteSize, budget: 0, at: "output '\(name)'")
            }
        }
        let pool = plan.pool
        let first = try pool.borrow { () throws(GraphError) in try Arena(plan: plan) }
        let wanted = min(plan.threadCount, batch)
        try withUnsafeTemporaryAllocation(of: Arena.self, capacity: wanted) { (arenas) throws(GraphError) in
            arenas.initializeElement(at: 0, to: first)
            var count = 1
            while count < wanted, let more = pool.tryBorrow(make: { () throws(GraphError) in try Arena(plan: plan) }) {
                arenas.initializeElement(at: count, to: more)
                count += 1
            }
            defer {
                for index in 0..<count { pool.giveBack(arenas[index]) }
                _ = UnsafeMutableBufferPointer(rebasing: arenas.prefix(count)).deinitialize()
            }
            let tasks = SampleTasks(
                split: self, arenas: UnsafeBufferPointer(rebasing: arenas.prefix(count)), inputs: inputs,
                declared: declared, results: results)
            if count == 1 {
                // One arena: the samples run one after another, each on all the plan's threads.
                tasks.run(0, threadCount: plan.threadCount)
            } else {
                ComputeContext(threadCount: count).parallelFor(count, tasks)
            }
            for index in 0..<count {
                if let failure = arenas[index].failure {
                    arenas[index].failure = nil
                    throw failure
                }
            }
        }
    }
}

/// The samples of one batch-split run: task `t` runs samples `t`, `t + arenas.count`, … on arena
/// `t` with one thread (or, with a single arena, every sample on the plan's threads).
struct SampleTasks: ParallelTasks {
    let split: BatchSplit
    let arenas: UnsafeBufferPointer<Arena>
    let inputs: [String: Tensor]
    let declared: [ValueInfo]
    let results: [String: Tensor]

    func run(_ task: Int) { run(task, threadCount: 1) }

    func run(_ task: Int, threadCount: Int) {
        let arena = arenas[task]
        let plan = split.plan
        for sample in stride(from: task, to: split.batch, by: arenas.count) {
            do throws(GraphError) {
                try plan.execute(
                    { index in
                        guard let tensor = inputs[declared[index].name] else { return nil }
                        let part = split.inputSamples[index]
                        return try? Tensor(
                            shape: part.shape, dtype: tensor.dtype, storage: tensor.storage,
                            byteOffset: tensor.byteOffset + sample * part.byteCount)
                    }, arena: arena, threadCount: threadCount, profile: nil)
                for (index, slot) in plan.outputs.enumerated() {
                    let bytes = split.outputs[index].byteCount
                    let source: UnsafeRawPointer
                    switch slot {
                    case .arena(let value): source = UnsafeRawPointer(arena.values[value].rawPointer)
                    case .input(let input):
                        guard let tensor = inputs[declared[input].name] else {
                            throw .missingInput(declared[input].name)
                        }
                        source = UnsafeRawPointer(tensor.rawPointer + sample * bytes)
                    case .constant: throw .outputNotProduced(plan.outputNames[index])
                    }
                    guard let target = results[plan.outputNames[index]] else {
                        throw .outputNotProduced(plan.outputNames[index])
                    }
                    (target.rawPointer + sample * bytes).copyMemory(from: source, byteCount: bytes)
                }
            } catch {
                arena.failure = error
                return
            }
        }
    }
}

/// Decides whether a graph computes every sample of a batch independently, so that a batch of N
/// may run as N batch-1 runs with the same results.
///
/// The rule is conservative: anything it cannot show to be per-sample runs whole. Given the facts
/// (shapes and folded constants) of the batch-1 and batch-N signatures:
/// - every value computed at run time has the batch on axis 0 (`[1, …]` and `[N, …]`, the rest
///   equal), the graph outputs among them;
/// - a constant folded at plan time is the same for both, unless all it feeds is shape operands
///   (`Reshape`'s shape, `Expand`'s shape, `Resize`'s sizes), directly or through other folded
///   values: `x.view(x.size(0), -1)` stays splittable;
/// - every operator that runs is on a list of operators known to be per-sample, with the
///   conditions that keep it so: `Softmax`, `LayerNormalization`, `Concat`, `Split`, `Gather` and
///   `GatherElements` not over axis 0, `Transpose` keeping axis 0 first, `Slice` not slicing
///   axis 0, `Gemm` not transposing the batch, `BatchNormalization` in inference mode, `MaxPool`
///   without its indices output (they count across the batch), and elementwise operators whose
///   run-time operands all have the output's rank (so no operand's batch axis broadcasts against
///   another axis). Weights must be constants.
///
/// Axis-0 mixing that changes a shape (reductions, `TopK`, `ArgMax`, `Tile`, `Pad` over the batch)
/// is caught by the shape condition.
public enum BatchSplitRule {
    /// Why the graph may not run split, or `nil` when it may.
    ///
    /// - Parameters:
    ///   - graph: the graph as it runs (sorted, optimized).
    ///   - single: every value's fact for the batch-1 signature.
    ///   - batched: every value's fact for the batch-N signature.
    ///   - batch: N, at least 2.
    public static func refusal(
        graph: Graph, single: [String: ValueFact], batched: [String: ValueFact], batch: Int
    ) -> String? {
        guard batch >= 2 else { return "batch \(batch)" }
        // Values whose folded constants differ between the signatures.
        var differing: Set<String> = []
        for (name, one) in single {
            guard let many = batched[name] else { return "value '\(name)' is missing at batch \(batch)" }
            switch (one.constant, many.constant) {
            case (let a?, let b?):
                if a.shape != b.shape || a.dtype != b.dtype || !a.isBitwiseEqual(to: b) { differing.insert(name) }
            case (nil, nil):
                let dimensions = one.shape.dimensions
                guard dimensions.first == 1, many.shape.dimensions.first == batch,
                    many.shape.dimensions.dropFirst() == dimensions.dropFirst(), one.dtype == many.dtype
                else {
                    return "value '\(name)' is \(one.shape) at batch 1 and \(many.shape) at batch \(batch)"
                }
            default:
                return "value '\(name)' is constant at one batch size only"
            }
        }
        for output in graph.outputs where single[output.name]?.constant != nil {
            return "output '\(output.name)' is a constant"
        }
        var consumers: [String: [(node: Int, position: Int)]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for (position, input) in node.inputs.enumerated() where !input.isEmpty {
                consumers[input, default: []].append((index, position))
            }
        }
        let outputs = Set(graph.outputs.map(\.name))
        var shapeOnly: [String: Bool] = [:]
        func feedsShapesOnly(_ name: String) -> Bool {
            if let known = shapeOnly[name] { return known }
            shapeOnly[name] = false  // a cycle cannot make it true
            var result = !outputs.contains(name)
            for use in consumers[name] ?? [] where result {
                let node = graph.nodes[use.node]
                switch (node.opType, use.position) {
                case ("Reshape", 1), ("Expand", 1), ("Resize", 3): continue
                default:
                    let keys = valueKeys(ofOutputsOf: node)
                    guard keys.allSatisfy({ single[$0] == nil || single[$0]?.constant != nil }) else {
                        result = false
                        break
                    }
                    result = keys.allSatisfy { !differing.contains($0) || feedsShapesOnly($0) }
                }
            }
            shapeOnly[name] = result
            return result
        }
        for name in differing.sorted() where !feedsShapesOnly(name) {
            return "constant '\(name)' depends on the batch size"
        }
        for node in graph.nodes {
            let runtime = node.inputs.map { !$0.isEmpty && single[$0] != nil && single[$0]?.constant == nil }
            // Nodes folded at plan time (Shape of a run-time value, say) were judged by their constants.
            let folded = valueKeys(ofOutputsOf: node).allSatisfy { single[$0] == nil || single[$0]?.constant != nil }
            guard runtime.contains(true), !folded else { continue }
            if let reason = refusal(node: node, runtime: runtime, facts: single, opset: graph.opsetVersion) {
                return "node '\(node.name)' (\(node.opType)): \(reason)"
            }
        }
        return nil
    }

    /// Operators that compute each element from the same sample's elements of their operands.
    static let elementwise: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
        "And", "Or", "Xor", "Not", "Where", "Sum", "Mean", "Max", "Min", "Cast", "CastLike", "Relu", "LeakyRelu",
        "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf", "Gelu", "Sqrt", "Exp", "Log", "Neg", "Abs", "Sign",
        "Reciprocal", "Floor", "Ceil", "Round", "Softplus", "Softsign", "Elu", "Selu", "Sin", "Cos", "Mish", "Clip",
        "PRelu", "IsInf", "IsNaN", "ThresholdedRelu", "Shrink", "Identity", "Dropout",
    ]

    /// Operators that are per-sample when only their first operand is computed at run time (the
    /// rest are weights or parameters); shape-changing mixing over axis 0 fails the shape check.
    static let firstOperandOnly: Set<String> = [
        "Conv", "ConvTranspose", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "InstanceNormalization",
        "DepthToSpace", "SpaceToDepth", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Tile", "Pad",
        "Resize", "Upsample", "ArgMax", "ArgMin", "TopK", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
        "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    ]

    static func refusal(node: Node, runtime: [Bool], facts: [String: ValueFact], opset: Int) -> String? {
        let rank = { (name: String) -> Int in facts[name]?.shape.dimensions.count ?? 0 }
        let outputRank = node.outputs.first.map(rank) ?? 0
        func axis(_ name: String, default value: Int, rank: Int) -> Int? {
            guard let raw = try? node.int(name, default: value) else { return nil }
            return raw < 0 ? raw + rank : raw
        }
        let onlyFirst = runtime.dropFirst().allSatisfy { !$0 } && runtime.first == true
        let inputRank = node.inputs.first.map(rank) ?? 0
        guard node.domain.isEmpty || node.domain == "ai.onnx" || node.domain == Node.apusDomain else {
            return "domain '\(node.domain)' is not known to be per-sample"
        }
        switch node.opType {
        case _ where elementwise.contains(node.opType):
            for (position, input) in node.inputs.enumerated() where !input.isEmpty {
                if runtime[position] {
                    if rank(input) != outputRank { return "operand '\(input)' broadcasts its batch axis" }
                } else if rank(input) == outputRank, facts[input]?.shape.dimensions.first != 1 {
                    return "constant operand '\(input)' spans the batch axis"
                }
            }
            return nil
        case "FusedConv":
            // X, W, B, and the residual added in the epilogue.
            if runtime.count > 1 && runtime[1] || runtime.count > 2 && runtime[2] { return "run-time weights" }
            if runtime.count > 3 && runtime[3] && rank(node.inputs[3]) != outputRank { return "residual broadcasts" }
            return nil
        case "MaxPool":
            if node.outputs.count > 1 && !node.outputs[1].isEmpty && facts[node.outputs[1]] != nil {
                return "its indices count across the batch"
            }
            return onlyFirst ? nil : "run-time parameters"
        case "BatchNormalization":
            if (try? node.int("training_mode", default: 0)) != 0 { return "training mode uses batch statistics" }
            return onlyFirst ? nil : "run-time parameters"
        case _ where firstOperandOnly.contains(node.opType):
            if node.opType == "Flatten", let axis = axis("axis", default: 1, rank: inputRank), axis < 1 {
                return "flattens the batch axis"
            }
            return onlyFirst ? nil : "run-time parameters"
        case "Gemm", "FusedGemm":
            // A, B, C, and (fused) the residual added in the epilogue.
            if (try? node.int("transA", default: 0)) != 0 { return "transposes the batch axis" }
            if runtime.count > 1 && runtime[1] || runtime.count > 2 && runtime[2] { return "run-time weights" }
            if runtime.count > 3 && runtime[3] && rank(node.inputs[3]) != outputRank { return "residual broadcasts" }
            return nil
        case "MatMul":
            guard runtime.count == 2 else { return "expected two operands" }
            let (a, b) = (rank(node.inputs[0]), rank(node.inputs[1]))
            switch (runtime[0], runtime[1]) {
            case (true, false): return a >= 2 ? nil : "a vector operand holds the batch"
            case (false, true), (true, true):
                // The batch must be a broadcast (leading) axis of the product.
                guard b >= 3, runtime[0] ? a == b : a < b else { return "the batch axis is not a leading axis" }
                return nil
            case (false, false): return nil
            }
        case "Softmax", "LogSoftmax", "Hardmax":
            guard let axis = axis("axis", default: opset >= 13 ? -1 : 1, rank: inputRank), axis >= 1 else {
                return "normalizes over the batch axis"
            }
            return onlyFirst ? nil : "run-time parameters"
        case "LayerNormalization":
            guard let axis = axis("axis", default: -1, rank: inputRank), axis >= 1 else {
                return "normalizes over the batch axis"
            }
            return onlyFirst ? nil : "run-time parameters"
        case "Concat":
            guard let axis = axis("axis", default: 0, rank: outputRank), axis != 0 else {
                return "concatenates along the batch axis"
            }
            for (position, input) in node.inputs.enumerated() where runtime[position] && rank(input) != outputRank {
                return "operand '\(input)' has another rank"
            }
            return nil
        case "Split":
            guard let axis = axis("axis", default: 0, rank: inputRank), axis != 0 else {
                return "splits along the batch axis"
            }
            return onlyFirst ? nil : "run-time split sizes"
        case "Transpose":
            let perm = (try? node.ints("perm")) ?? Array((0..<inputRank).reversed())
            return perm.first == 0 ? nil : "moves the batch axis"
        case "Slice":
            let axes: [Int]?
            if opset < 10 {
                axes = (try? node.ints("axes")) ?? nil
            } else if node.inputs.count > 3, !node.inputs[3].isEmpty, let constant = facts[node.inputs[3]]?.constant {
                axes = try? LayoutSupport.integers(constant, input: 3)
            } else {
                axes = nil
            }
            guard let axes, onlyFirst else { return "may slice the batch axis" }
            return axes.contains(where: { $0 == 0 || $0 == -inputRank }) ? "slices the batch axis" : nil
        case "Gather":
            guard runtime.count == 2, let axis = axis("axis", default: 0, rank: inputRank) else {
                return "expected two operands"
            }
            switch (runtime[0], runtime[1]) {
            case (true, false): return axis != 0 ? nil : "gathers along the batch axis"
            case (false, true): return axis == 0 ? nil : "indices are not the leading axis"
            default: return "run-time data and indices"
            }
        case "GatherElements":
            guard let axis = axis("axis", default: 0, rank: inputRank), axis != 0 else {
                return "gathers along the batch axis"
            }
            for (position, input) in node.inputs.enumerated() where runtime[position] && rank(input) != outputRank {
                return "operand '\(input)' has another rank"
            }
            return runtime.allSatisfy { $0 } ? nil : "constant operand spans the batch axis"
        case "Trilu":
            return inputRank >= 3 && onlyFirst ? nil : "its matrix rows are the batch"
        default:
            return "not known to be per-sample"
        }
    }
}
