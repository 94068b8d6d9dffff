import Foundation

/// Why the pool did not run a piece of work.
public enum PoolRejection: Error, Sendable, Equatable {
    /// Every inference thread is busy and the wait queue is full: answer 503 at once.
    case overloaded
    /// The request's deadline passed while it waited or ran: answer 504.
    case deadlineExceeded
}

/// A fixed set of dedicated OS threads that run inferences, with a bounded wait queue.
///
/// Inference is CPU-bound and blocks for milliseconds to seconds, so it must run neither on the
/// NIO event loops (which would stall every connection of that loop, health checks included) nor
/// on Swift's cooperative pool (which has one thread per core and would starve the HTTP tasks).
/// Admission is decided under one lock: work is accepted only while
/// `running + waiting < maxConcurrency + queueLength`, so an overloaded server answers at once
/// instead of queueing without limit.
public final class InferencePool: @unchecked Sendable {
    /// Threads, each running one inference at a time.
    public let maxConcurrency: Int
    /// Requests that may wait for a free thread.
    public let queueLength: Int

    private let condition = NSCondition()
    private var waiting: [Job] = []  // guarded by `condition`
    private var running = 0  // guarded by `condition`
    private let onChange: @Sendable (_ waiting: Int, _ running: Int) -> Void

    /// One submitted piece of work; completes exactly once (result, or deadline).
    final class Job: @unchecked Sendable {
        let deadline: ContinuousClock.Instant
        private let lock = NSLock()
        private var completion: ((Result<any Sendable, any Error>) -> Void)?
        let work: @Sendable () throws -> any Sendable
        var timer: Task<Void, Never>?

        init(
            deadline: ContinuousClock.Instant, work: @escaping @Sendable () throws -> any Sendable,
            completion: @escaping (Result<any Sendable, any Error>) -> Void
        ) {
            self.deadline = deadline
            self.work = work
            self.completion = completion
        }

        /// Delivers the outcome unless one was delivered already; true if this call delivered it.
        @discardableResult
        func complete(_ result: Result<any Sendable, any Error>) -> Bool {
            lock.lock()
            let completion = self.completion
            self.completion = nil
            let timer = self.timer
            lock.unlock()
            guard let completion else { return false }
            timer?.cancel()
            completion(result)
            return true
        }

        func setTimer(_ task: Task<Void, Never>) {
            lock.lock()
            let alreadyDone = completion == nil
            if !alreadyDone { timer = task }
            lock.unlock()
            if alreadyDone { task.cancel() }
        }
    }

    /// Starts `maxConcurrency` threads; `onChange` is told the queue depth and running count
    /// whenever they change (for metrics).
    public init(
        maxConcurrency: Int, queueLength: Int,
        onChange: @escaping @Sendable (_ waiting: Int, _ running: Int) -> Void = { _, _ in }
    ) {
        self.maxConcurrency = max(1, maxConcurrency)
        self.queueLength = max(0, queueLength)
        self.onChange = onChange
        for index in 0..<self.maxConcurrency {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "apus-inference-\(index)"
            // Model runs recurse little, but image decoders and the planner like some stack.
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Requests waiting for a thread right now.
    public var queueDepth: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting.count
    }

    /// Runs `body` on an inference thread and returns its result.
    ///
    /// - Throws: ``PoolRejection/overloaded`` at once when the pool and its queue are full;
    ///   ``PoolRejection/deadlineExceeded`` when `deadline` passes first (work not yet started is
    ///   then skipped; work already running finishes and its result is dropped); or what `body`
    ///   throws.
    public func run<T: Sendable>(deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () throws -> T)
        async throws -> T
    {
        let result: any Sendable = try await withCheckedThrowingContinuation { continuation in
            let job = Job(deadline: deadline, work: { try body() }) { result in
                continuation.resume(with: result)
            }
            condition.lock()
            guard running + waiting.count < maxConcurrency + queueLength else {
                condition.unlock()
                job.complete(.failure(PoolRejection.overloaded))
                return
            }
            waiting.append(job)
            let depth = (waiting.count, running)
            condition.signal()
            condition.unlock()
            onChange(depth.0, depth.1)
            job.setTimer(
                Task { [weak self, job] in
                    try? await Task.sleep(until: deadline, clock: .continuous)
                    guard !Task.isCancelled else { return }
                    self?.expire(job)
                })
        }
        guard let typed = result as? T else { throw PoolRejection.deadlineExceeded }
        return typed
    }

    private func expire(_ job: Job) {
        condition.lock()
        if let index = waiting.firstIndex(where: { $0 === job }) { waiting.remove(at: index) }
        let depth = (waiting.count, running)
        condition.unlock()
        onChange(depth.0, depth.1)
        job.complete(.failure(PoolRejection.deadlineExceeded))
    }

    private func workerLoop() {
        while true {
            condition.lock()
            while waiting.isEmpty { condition.wait() }
            let job = waiting.removeFirst()
            running += 1
            var depth = (waiting.count, running)
            condition.unlock()
            onChange(depth.0, depth.1)

            if ContinuousClock.now >= job.deadline {
                job.complete(.failure(PoolRejection.deadlineExceeded))
            } else {
                job.complete(Result { try job.work() })
            }

            condition.lock()
            running -= 1
            depth = (waiting.count, running)
            condition.unlock()
            onChange(depth.0, depth.1)
        }
    }
}
