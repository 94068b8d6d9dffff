/// What a kernel may use while it runs: a number of threads and a scratch workspace.
///
/// Work is split into a fixed number of parts that depends only on the problem, never on the
/// thread count, where a split could change the order of floating-point operations; so results
/// are bitwise identical whatever ``threadCount`` is.
public struct ComputeContext: @unchecked Sendable {
    /// The number of threads kernels may use (at least 1).
    public var threadCount: Int
    /// Scratch memory for the running kernel (64-byte aligned), or `nil` when none was planned.
    public var workspace: UnsafeMutableRawPointer?
    /// Size of ``workspace`` in bytes.
    public var workspaceByteCount: Int

    public init(threadCount: Int = 1, workspace: UnsafeMutableRawPointer? = nil, workspaceByteCount: Int = 0) {
        self.threadCount = max(1, threadCount)
        self.workspace = workspace
        self.workspaceByteCount = workspaceByteCount
    }

    /// Runs `tasks.run(task)` for every task in `0..<taskCount`, on up to ``threadCount`` threads
    /// (the caller's among them). Each task runs exactly once; tasks must write disjoint memory.
    ///
    /// Uses the process-wide worker pool; when another thread's call holds it, or when called from
    /// inside a task, the tasks run inline on the calling thread. Allocates nothing once
    /// specialized: the pool gets a pointer to `tasks` and a function with no captured context.
    /// It is inlinable so that callers in other modules specialize it too (an unspecialized call
    /// would box that function with the generic type).
    @inlinable @inline(__always)
    public func parallelFor<Tasks: ParallelTasks>(_ taskCount: Int, _ tasks: Tasks) {
        if taskCount <= 0 { return }
        if threadCount == 1 || taskCount == 1 {
            for task in 0..<taskCount { tasks.run(task) }
            return
        }
        withUnsafePointer(to: tasks) { pointer in
            ThreadPool.shared.run(taskCount: taskCount, threadCount: threadCount, context: UnsafeRawPointer(pointer)) {
                context, task in context.assumingMemoryBound(to: Tasks.self).pointee.run(task)
            }
        }
    }

    /// Runs `ranges.run(range)` over `0..<count` cut into consecutive ranges of `blockSize`
    /// (the last one shorter), one task each: the split depends only on `count` and `blockSize`.
    @inlinable @inline(__always)
    public func parallelFor<Ranges: ParallelRanges>(_ count: Int, blockSize: Int, _ ranges: Ranges) {
        precondition(blockSize > 0, "block size \(blockSize)")
        if count <= 0 { return }
        parallelFor((count + blockSize - 1) / blockSize, RangeBlocks(ranges: ranges, count: count, size: blockSize))
    }

    /// Runs `ranges.run(range, scratch:)` over `0..<count` cut into one consecutive range per
    /// worker, each worker with its own `slotByteCount` bytes of ``workspace`` (a multiple of 64):
    /// as many workers as threads, items and slots allow. For work whose items need scratch
    /// memory; the split does not change what an item computes.
    @inlinable @inline(__always)
    public func parallelFor<Ranges: ParallelSlotRanges>(_ count: Int, slotByteCount: Int, _ ranges: Ranges) {
        precondition(
            slotByteCount > 0 && workspace != nil && workspaceByteCount >= slotByteCount,
            "needs \(slotByteCount) workspace bytes, has \(workspaceByteCount)")
        guard count > 0, let base = workspace else { return }
        let workers = Swift.min(threadCount, count, workspaceByteCount / slotByteCount)
        ComputeContext(threadCount: workers).parallelFor(
            workers, SlotWorkers(ranges: ranges, count: count, workers: workers, scratch: base, slot: slotByteCount))
    }

    /// Runs `body(task)` for every task in `0..<taskCount`, like the ``ParallelTasks`` form.
    ///
    /// With more than one thread this heap-allocates once or twice per call
    /// (`withoutActuallyEscaping` boxes `body`); code that runs per inference uses the
    /// ``ParallelTasks`` form instead.
    @inline(__always)
    public func parallelFor(_ taskCount: Int, _ body: (Int) -> Void) {
        if taskCount <= 0 { return }
        if threadCount == 1 || taskCount == 1 {
            for task in 0..<taskCount { body(task) }
            return
        }
        ThreadPool.shared.run(taskCount: taskCount, threadCount: threadCount, body)
    }
}

/// The tasks of one ``ComputeContext/parallelFor(_:_:)`` call: a small struct holding
/// what the tasks share (pointers, sizes, the plan) as `let` fields, and what one task does.
///
/// A struct rather than a closure because handing a non-escaping closure to other threads costs a
/// heap allocation per call, and the project makes none per inference.
public protocol ParallelTasks {
    /// Runs task `task` (in `0..<taskCount`). Called exactly once per task, possibly on another
    /// thread and concurrently with the other tasks, so tasks write disjoint memory.
    func run(_ task: Int)
}

/// Work over a range of items cut into blocks by ``ComputeContext/parallelFor(_:blockSize:_:)``:
/// what one block of consecutive items does.
public protocol ParallelRanges {
    /// Runs the items `range`. Called once per block, possibly on another thread and
    /// concurrently with the other blocks, so blocks write disjoint memory.
    func run(_ range: Range<Int>)
}

/// Work over a range of items that needs scratch memory, run by
/// ``ComputeContext/parallelFor(_:slotByteCount:_:)``: what one worker does with its range and
/// its slot of the workspace.
public protocol ParallelSlotRanges {
    /// Runs the items `range` with `scratch`, this worker's slot. Called once per worker, possibly
    /// on another thread and concurrently with the others, so ranges write disjoint memory.
    func run(_ range: Range<Int>, scratch: UnsafeMutableRawPointer)
}

/// The tasks of a ``ParallelSlotRanges``: task `w` is worker `w`'s range and slot.
@usableFromInline
struct SlotWorkers<Ranges: ParallelSlotRanges>: ParallelTasks {
    @usableFromInline let ranges: Ranges
    @usableFromInline let count: Int
    @usableFromInline let workers: Int
    @usableFromInline let scratch: UnsafeMutableRawPointer
    @usableFromInline let slot: Int

    @inlinable
    init(ranges: Ranges, count: Int, workers: Int, scratch: UnsafeMutableRawPointer, slot: Int) {
        self.ranges = ranges
        self.count = count
        self.workers = workers
        self.scratch = scratch
        self.slot = slot
    }

    @inlinable
    func run(_ worker: Int) {
        ranges.run((worker * count / workers)..<((worker + 1) * count / workers), scratch: scratch + worker * slot)
    }
}

/// The tasks of a ``ParallelRanges``: task `t` is block `t`.
@usableFromInline
struct RangeBlocks<Ranges: ParallelRanges>: ParallelTasks {
    @usableFromInline let ranges: Ranges
    @usableFromInline let count: Int
    @usableFromInline let size: Int

    @inlinable
    init(ranges: Ranges, count: Int, size: Int) {
        self.ranges = ranges
        self.count = count
        self.size = size
    }

    @inlinable
    func run(_ task: Int) { ranges.run(task * size..<Swift.min(count, (task + 1) * size)) }
}
