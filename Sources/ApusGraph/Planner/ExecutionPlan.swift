import ApusOps
import ApusTensor
import Dispatch
import Synchronization

/// Where a step finds one of its inputs.
enum Slot: Sendable {
    /// A value known at plan time (weight or folded constant).
    case constant(Tensor)
    /// The caller's input at this index (in ``Graph/inputs`` order).
    case input(Int)
    /// An intermediate value living in the arena: index into ``ExecutionPlan/arenaValues``.
    case arena(Int)
}

/// An intermediate value's place in the arena.
struct ArenaValue: Sendable {
    var name: String
    var shape: Shape
    var dtype: DType
    var offset: Int
    var byteCount: Int
}

/// One operator call of a plan.
struct Step: Sendable {
    var nodeName: String
    var opType: String
    var op: any Operator
    var inputs: [Slot?]
    var outputs: [Int]
    /// Weights a later step streams from memory, which this step's packed-GEMM kernel calls fetch
    /// into the cache meanwhile (``ReadAhead``; set by ``Planner/assignReadAheads(_:)``).
    var readAhead: Tensor? = nil
}

/// Everything needed to run a graph for one signature of input shapes: the steps in order with
/// their kernels chosen and weights prepacked, every intermediate value's offset in one arena
/// (buffers reused by liveness), and the scratch workspace size.
///
/// A plan is immutable and shared by concurrent runs; each run borrows an ``Arena`` from the
/// plan's bounded pool.
public final class ExecutionPlan: Sendable {
    let steps: [Step]
    let arenaValues: [ArenaValue]
    let outputs: [Slot]
    /// The graph's declared output names, in order.
    public let outputNames: [String]
    /// Shapes and dtypes of the outputs.
    public let outputFacts: [ValueFact]
    /// Bytes of the arena holding intermediate values.
    public let arenaByteCount: Int
    /// Bytes of scratch space the largest kernel needs.
    public let workspaceByteCount: Int
    /// Intra-op threads the plan was specialized for.
    public let threadCount: Int
    /// Number of operator calls per run (nodes folded into constants at plan time not counted).
    public var stepCount: Int { steps.count }
    /// Per-step descriptions (node name, operator type, output shapes), for profiling and `inspect`.
    public var stepSummaries: [(node: String, opType: String, outputShapes: [Shape])] {
        steps.map { step in (step.nodeName, step.opType, step.outputs.map { arenaValues[$0].shape }) }
    }
    /// Convolutions whose plans read weights prepacked into the artifact (``PrepackWeights``)
    /// in place, rather than a copy packed when this plan was made.
    public var prepackedConvolutionCount: Int {
        steps.reduce(0) { count, step in
            if let conv = step.op as? Conv { return count + (conv.plan?.usesPrepackedWeights == true ? 1 : 0) }
            if let joined = step.op as? ExpandDepthwiseConv {
                return count + (joined.expansion.plan?.usesPrepackedWeights == true ? 1 : 0)
            }
            if let joined = step.op as? ScaledInputConv {
                return count + (joined.conv.plan?.usesPrepackedWeights == true ? 1 : 0)
            }
            return count
        }
    }
    let pool: ArenaPool

    init(
        steps: [Step], arenaValues: [ArenaValue], outputs: [Slot], outputNames: [String], outputFacts: [ValueFact],
        arenaByteCount: Int, workspaceByteCount: Int, threadCount: Int, maxConcurrentRuns: Int
    ) {
        self.steps = steps
        self.arenaValues = arenaValues
        self.outputs = outputs
        self.outputNames = outputNames
        self.outputFacts = outputFacts
        self.arenaByteCount = arenaByteCount
        self.workspaceByteCount = workspaceByteCount
        self.threadCount = threadCount
        self.pool = ArenaPool(capacity: maxConcurrentRuns)
    }

    /// Runs the plan on inputs given in ``Graph/inputs`` order (already validated against the
    /// signature this plan was made for) and returns the outputs in fresh storage.
    public func run(_ inputs: [Tensor], threadCount: Int? = nil) throws(GraphError) -> [Tensor] {
        let arena = try pool.borrow { () throws(GraphError) in try Arena(plan: self) }
        defer { pool.giveBack(arena) }
        try execute({ inputs[$0] }, arena: arena, threadCount: threadCount ?? self.threadCount, profile: nil)
        var results: [Tensor] = []
        results.reserveCapacity(outputs.count)
        for slot in outputs {
            let source: Tensor
            switch slot {
            case .constant(let tensor): source = tensor
            case .input(let index): source = inputs[index]
            case .arena(let index): source = arena.values[index]
            }
            do {
                results.append(try source.copy())
            } catch {
                throw .memoryBudgetExceeded(needed: source.byteCount, budget: 0, at: "output copy")
            }
        }
        return results
    }

    /// Runs the plan on named inputs (already validated against this plan's signature) and writes
    /// the outputs into `outputs` under their names: in place when a tensor of the right shape and
    /// dtype is already there, else as fresh tensors. Allocates nothing when every output is reused.
    func run(named inputs: [String: Tensor], declared: [ValueInfo], into outputs: inout [String: Tensor])
        throws(GraphError)
    {
        let arena = try pool.borrow { () throws(GraphError) in try Arena(plan: self) }
        defer { pool.giveBack(arena) }
        try execute(
            { index in inputs[declared[index].name] }, arena: arena, threadCount: threadCount,
            profile: nil)
        for (index, slot) in self.outputs.enumerated() {
            let source: Tensor
            switch slot {
            case .constant(let tensor): source = tensor
            case .input(let input):
                guard let tensor = inputs[declared[input].name] else { throw .missingInput(declared[input].name) }
                source = tensor
            case .arena(let value): source = arena.values[value]
            }
            let name = outputNames[index]
            if let target = outputs[name], target.shape == source.shape, target.dtype == source.dtype {
                if target.rawPointer != source.rawPointer {
                    target.rawPointer.copyMemory(from: source.rawPointer, byteCount: source.byteCount)
                }
                continue
            }
            do {
                outputs[name] = try source.copy()
            } catch {
                throw .memoryBudgetExceeded(needed: source.byteCount, budget: 0, at: "output copy")
            }
        }
    }

    /// Runs the plan and records the time of every step in `profile` (nanoseconds, by step index).
    public func runProfiled(_ inputs: [Tensor], into profile: inout [UInt64]) throws(GraphError) {
        let arena = try pool.borrow { () throws(GraphError) in try Arena(plan: self) }
        defer { pool.giveBack(arena) }
        if profile.count != steps.count { profile = [UInt64](repeating: 0, count: steps.count) }
        try execute(inputs, arena: arena, threadCount: threadCount, profile: &profile)
    }

    /// Runs every step; `input(i)` is the caller's input `i` in ``Graph/inputs`` order.
    func execute(_ input: (Int) -> Tensor?, arena: Arena, threadCount: Int, profile: UnsafeMutablePointer<[UInt64]>?)
        throws(GraphError)
    {
        for patch in arena.inputPatches {
            arena.stepInputs[patch.step][patch.position] = input(patch.input)
        }
        let context = ComputeContext(
            threadCount: threadCount, workspace: arena.workspace, workspaceByteCount: workspaceByteCount)
        for index in steps.indices {
            let step = steps[index]
            let start = profile == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            do {
                if let region = step.readAhead, let stream = arena.readAheadStreams[index] {
                    try ReadAhead.during(
                        UnsafeRawBufferPointer(start: region.rawPointer, count: region.byteCount), stream: stream
                    ) {
                        () throws(OperatorError) in
                        try step.op.run(arena.stepInputs[index], outputs: arena.stepOutputs[index], context: context)
                    }
                } else {
                    try step.op.run(arena.stepInputs[index], outputs: arena.stepOutputs[index], context: context)
                }
            } catch {
                throw .node(name: step.nodeName, opType: step.opType, error)
            }
            if let profile { profile.pointee[index] += DispatchTime.now().uptimeNanoseconds - start }
        }
        // Drop references to the caller's tensors so their storage is not kept alive by the pool.
        for patch in arena.inputPatches { arena.stepInputs[patch.step][patch.position] = nil }
    }

    func execute(_ inputs: [Tensor], arena: Arena, threadCount: Int, profile: inout [UInt64]) throws(GraphError) {
        try withUnsafeMutablePointer(to: &profile) { (pointer) throws(GraphError) in
            try execute({ inputs[$0] }, arena: arena, threadCount: threadCount, profile: pointer)
        }
    }
}

/// The memory of one run: the arena block, the workspace, and tensor views over both, built once
/// so that a run allocates nothing but its outputs.
final class Arena: @unchecked Sendable {
    let storage: TensorStorage
    let workspace: UnsafeMutableRawPointer?
    let values: [Tensor]
    var stepInputs: [[Tensor?]]
    let stepOutputs: [[Tensor]]
    let inputPatches: [(step: Int, position: Int, input: Int)]
    /// The read-ahead stream of each step that has one (``Step/readAhead``), in `streams`.
    let readAheadStreams: [UnsafeMutableRawPointer?]
    private let streams: TensorStorage?
    /// The error of a batch-split task that ran on this arena, for the caller to throw.
    var failure: GraphError?

    init(plan: ExecutionPlan) throws(GraphError) {
        let workspaceOffset = (plan.arenaByteCount + 63) / 64 * 64
        let total = workspaceOffset + plan.workspaceByteCount
        do {
            storage = try TensorStorage(byteCount: total)
        } catch {
            throw .memoryBudgetExceeded(needed: total, budget: 0, at: "arena allocation")
        }
        workspace = plan.workspaceByteCount > 0 ? storage.baseAddress + workspaceOffset : nil
        var values: [Tensor] = []
        for value in plan.arenaValues {
            do {
                values.append(
                    try Tensor(shape: value.shape, dtype: value.dtype, storage: storage, byteOffset: value.offset))
            } catch {
                throw .limitExceeded("arena value '\(value.name)': \(error)")
            }
        }
        self.values = values
        var patches: [(Int, Int, Int)] = []
        stepInputs = plan.steps.enumerated().map { stepIndex, step in
            step.inputs.enumerated().map { position, slot -> Tensor? in
                switch slot {
                case nil: return nil
                case .constant(let tensor): return tensor
                case .arena(let index): return values[index]
                case .input(let input):
                    patches.append((stepIndex, position, input))
                    return nil
                }
            }
        }
        inputPatches = patches.map { (step: $0.0, position: $0.1, input: $0.2) }
        stepOutputs = plan.steps.map { step in step.outputs.map { values[$0] } }
        let readers = plan.steps.indices.filter { plan.steps[$0].readAhead != nil }
        if readers.isEmpty {
            streams = nil
            readAheadStreams = plan.steps.map { _ in nil }
        } else {
            let storage: TensorStorage
            do {
                storage = try TensorStorage(byteCount: readers.count * ReadAhead.streamByteCount)
            } catch {
                throw .memoryBudgetExceeded(needed: readers.count * ReadAhead.streamByteCount, budget: 0, at: "arena")
            }
            var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: plan.steps.count)
            for (slot, step) in readers.enumerated() {
                pointers[step] = storage.baseAddress + slot * ReadAhead.streamByteCount
            }
            streams = storage
            readAheadStreams = pointers
        }
    }
}

/// A bounded pool of arenas: at most `capacity` runs of one plan execute at once (further callers
/// wait), and idle arenas are kept for reuse.
final class ArenaPool: Sendable {
    private let idle = Mutex<[Arena]>([])
    private let slots: DispatchSemaphore
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        slots = DispatchSemaphore(value: self.capacity)
    }

    func borrow(make: () throws(GraphError) -> Arena) throws(GraphError) -> Arena {
        slots.wait()
        return try take(make)
    }

    /// An arena if one may be had without waiting, else `nil`.
    func tryBorrow(make: () throws(GraphError) -> Arena) -> Arena? {
        guard slots.wait(timeout: .now()) == .success else { return nil }
        return try? take(make)
    }

    /// An idle arena or a new one, for a caller holding a slot (given back if making one fails).
    private func take(_ make: () throws(GraphError) -> Arena) throws(GraphError) -> Arena {
        if let arena = idle.withLock({ $0.popLast() }) { return arena }
        do {
            return try make()
        } catch {
            slots.signal()
            throw error
        }
    }

    func giveBack(_ arena: Arena) {
        idle.withLock { $0.append(arena) }
        slots.signal()
    }
}
