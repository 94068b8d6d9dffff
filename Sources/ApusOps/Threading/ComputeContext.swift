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

    /// Runs `body(task)` for every task in `0..<taskCount`, on up to ``threadCount`` threads (the
    /// caller's among them). Each task runs exactly once; tasks must write disjoint memory.
    ///
    /// Uses the process-wide worker pool; when another thread's call holds it, or when called from
    /// inside a task, the tasks run inline on the calling thread. With more than one thread, one
    /// small heap block per call (`withoutActuallyEscaping` boxes `body`).
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
