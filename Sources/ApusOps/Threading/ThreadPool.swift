#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization

/// The process-wide pool of persistent worker threads behind ``ComputeContext/parallelFor(_:_:)``.
///
/// One inference makes 50–100 parallel calls of 10–200 µs each, so what matters is the latency of
/// handing out a job, not its throughput: the calling thread publishes the job and works on it as
/// worker 0; idle workers spin on the job state for a short while (``spinNanoseconds``) before
/// sleeping on a condition variable, so back-to-back calls of one inference reach them without a
/// kernel wake-up. A job is a pointer to the caller's task description and a function that runs
/// one task of it; with a ``ParallelTasks`` struct that function captures nothing, so a call
/// allocates nothing (the closure form pays for the box `withoutActuallyEscaping` makes).
///
/// Threads claim blocks of contiguous tasks from a shared counter: which thread runs a task changes
/// from run to run, but the tasks themselves (and so the results) are those the kernel defined.
///
/// Only one caller uses the workers at a time: a caller that finds the pool busy (another
/// thread's job, or a `parallelFor` nested inside a task) runs its tasks inline. So the pool never
/// waits on itself and concurrent model runs never deadlock.
@usableFromInline
final class ThreadPool: @unchecked Sendable {
    /// The pool all compute contexts share. Workers are started on first use.
    @usableFromInline
    static let shared = ThreadPool()

    /// How long an idle worker keeps polling for the next job before it sleeps.
    static let spinNanoseconds: UInt64 = 20_000

    // The job state, one word so that joining is a single compare-and-swap:
    // bits 0–15 workers inside the job, 16–31 how many may join, bit 32 closed, bits 33–63 generation.
    private static let activeMask: UInt64 = 0xFFFF
    private static let limitShift: UInt64 = 16
    private static let closedBit: UInt64 = 1 << 32
    private static let generationShift: UInt64 = 33

    private let state = Atomic<UInt64>(closedBit)
    /// Set while a caller owns the workers.
    private let busy = Atomic<Bool>(false)
    private let nextTask = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    /// Workers started so far (grows under `busy`, never shrinks).
    private let workerCount = Atomic<Int>(0)
    // The job: written by the owning caller while the job is closed and no worker is inside it,
    // read by workers only between joining and leaving.
    nonisolated(unsafe) private var taskCount = 0
    nonisolated(unsafe) private var blockCount = 0
    nonisolated(unsafe) private var context: UnsafeRawPointer?
    // Not optional: a function inside an Optional is stored at the generic abstraction, and
    // taking it out makes a reabstraction thunk, a heap allocation per worker per job.
    nonisolated(unsafe) private var invoke: (UnsafeRawPointer, Int) -> Void = { _, _ in }
    nonisolated(unsafe) private var generation: UInt64 = 0
    /// The caller's read-ahead stream (``ReadAhead``), which workers use while inside the job.
    nonisolated(unsafe) private var readAhead: UnsafeMutableRawPointer?

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    private init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
    }

    /// Runs `invoke(context, task)` for every task in `0..<taskCount` on the calling thread and up
    /// to `threadCount - 1` workers; returns when every task has run. `context` must stay valid
    /// until then; `invoke` is only kept until then, so a function that captures nothing (as the
    /// specialized ``ComputeContext/parallelFor(_:_:)`` passes) costs no allocation.
    @usableFromInline
    func run(
        taskCount: Int, threadCount: Int, context: UnsafeRawPointer,
        invoke: @escaping (UnsafeRawPointer, Int) -> Void
    ) {
        let helpers = min(threadCount, taskCount) - 1
        guard helpers > 0, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else {
            for task in 0..<taskCount { invoke(context, task) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        startWorkers(upTo: min(helpers, Int(Self.activeMask)))
        runJob(taskCount: taskCount, helpers: helpers, context: context, invoke: invoke)
    }

    /// Runs `body(task)` for every task in `0..<taskCount`, like
    /// ``run(taskCount:threadCount:context:invoke:)``; boxes `body` (a heap allocation) to hand it
    /// to the workers.
    func run(taskCount: Int, threadCount: Int, _ body: (Int) -> Void) {
        // Inline without the box when the job would run inline anyway (a racy early look; `run`
        // below decides for good).
        if min(threadCount, taskCount) <= 1 || busy.load(ordering: .relaxed) {
            for task in 0..<taskCount { body(task) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            withUnsafePointer(to: escapable) { pointer in
                run(taskCount: taskCount, threadCount: threadCount, context: UnsafeRawPointer(pointer)) {
                    context, task in context.assumingMemoryBound(to: ((Int) -> Void).self).pointee(task)
                }
            }
        }
    }

    private func runJob(
        taskCount: Int, helpers: Int, context: UnsafeRawPointer, invoke: @escaping (UnsafeRawPointer, Int) -> Void
    ) {
        self.taskCount = taskCount
        self.blockCount = Self.blockCount(taskCount: taskCount, helpers: helpers)
        self.context = context
        self.invoke = invoke
        self.readAhead = ReadAhead.current
        nextTask.store(0, ordering: .relaxed)
        generation &+= 1
        let limit = UInt64(min(helpers, Int(Self.activeMask)))
        // Open the job: the release publishes the fields above to workers that join.
        state.store(
            (generation << Self.generationShift) | (limit << Self.limitShift), ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        Self.work(
            taskCount: taskCount, blockCount: blockCount, next: nextTask, context: context, invoke: invoke)
        // Close the job to latecomers, then wait for the workers still finishing a task.
        var current = state.bitwiseOr(Self.closedBit, ordering: .acquiringAndReleasing).newValue
        var spins = 0
        while current & Self.activeMask != 0 {
            spins += 1
            // A worker that was descheduled mid-task needs the core this thread is spinning on.
            if spins > 1024 { sched_yield() }
            current = state.load(ordering: .acquiring)
        }
        self.context = nil
        self.invoke = { _, _ in }
    }

    /// Claims blocks of contiguous tasks and runs them until none is left. Blocks keep neighbouring
    /// tasks (which often write neighbouring memory) on one core; claiming them keeps a late
    /// worker from delaying the job.
    @inline(never)
    private static func work(
        taskCount: Int, blockCount: Int, next: borrowing Atomic<Int>, context: UnsafeRawPointer,
        invoke: (UnsafeRawPointer, Int) -> Void
    ) {
        while true {
            let block = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if block >= blockCount { return }
            let start = block * taskCount / blockCount
            let end = (block + 1) * taskCount / blockCount
            for task in start..<end { invoke(context, task) }
        }
    }

    /// One block per participating thread: the split Dispatch used before, with no cost for tiny tasks.
    static func blockCount(taskCount: Int, helpers: Int) -> Int {
        min(taskCount, (helpers + 1) * blocksPerThread)
    }

    /// Blocks per participating thread.
    static let blocksPerThread = 1

    private func startWorkers(upTo wanted: Int) {
        // Only the caller holding `busy` starts workers, so the count cannot race.
        var started = workerCount.load(ordering: .relaxed)
        while started < wanted {
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            #if canImport(Glibc)
                var thread = pthread_t()
            #else
                var thread: pthread_t?
            #endif
            let result = pthread_create(
                &thread, &attributes,
                { _ in
                    ThreadPool.shared.workerLoop()
                    return nil
                }, nil)
            pthread_attr_destroy(&attributes)
            // Without the thread, jobs still complete: the caller runs whatever nobody claims.
            if result != 0 { return }
            started += 1
            workerCount.store(started, ordering: .relaxed)
        }
    }

    private func workerLoop() {
        var seen: UInt64 = 0
        while true {
            let current = state.load(ordering: .acquiring)
            let generation = current >> Self.generationShift
            if generation != seen {
                seen = generation
                if join(generation) {
                    if let readAhead { ReadAhead.use(readAhead) }
                    Self.work(
                        taskCount: taskCount, blockCount: blockCount, next: nextTask,
                        context: context.unsafelyUnwrapped,
                        invoke: invoke)
                    if readAhead != nil { ReadAhead.use(nil) }
                    state.wrappingSubtract(1, ordering: .releasing)
                }
                continue
            }
            waitForJob(after: seen)
        }
    }

    /// Enters the open job of `generation` if there is room; the job's fields stay valid until
    /// the worker leaves.
    private func join(_ generation: UInt64) -> Bool {
        var current = state.load(ordering: .relaxed)
        while true {
            let active = current & Self.activeMask
            let limit = (current >> Self.limitShift) & Self.activeMask
            guard current >> Self.generationShift == generation, current & Self.closedBit == 0, active < limit
            else { return false }
            let (exchanged, original) = state.compareExchange(
                expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
    }

    /// Polls for a generation after `seen` for ``spinNanoseconds``, then sleeps until one is published.
    private func waitForJob(after seen: UInt64) {
        let deadline = Self.now() &+ Self.spinNanoseconds
        var spins = 0
        while true {
            if state.load(ordering: .relaxed) >> Self.generationShift != seen { return }
            spins += 1
            if spins & 63 == 0, Self.now() > deadline { break }
        }
        pthread_mutex_lock(mutex)
        sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
        // Checked under the mutex after announcing the sleep: a caller that opened a job before
        // this load is seen here; one that opens it later sees `sleepers` and broadcasts.
        while state.load(ordering: .sequentiallyConsistent) >> Self.generationShift == seen {
            pthread_cond_wait(condition, mutex)
        }
        sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(mutex)
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}
