#if canImport(Glibc)
    import Glibc
#endif
import Dispatch
import Testing

@testable import ApusOps

/// Runs `parallelFor(taskCount)` where every task counts its own runs, and expects each count is 1.
private func expectEveryTaskRunsOnce(
    taskCount: Int, threadCount: Int, sourceLocation: SourceLocation = #_sourceLocation
) {
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: max(1, taskCount))
    defer { counts.deallocate() }
    counts.initialize(repeating: 0, count: max(1, taskCount))
    let context = ComputeContext(threadCount: threadCount)
    context.parallelFor(taskCount) { task in counts[task] += 1 }
    let wrong = (0..<taskCount).filter { counts[$0] != 1 }
    #expect(
        wrong.isEmpty, "tasks \(wrong.prefix(5)) ran \(wrong.prefix(5).map { counts[$0] }) times",
        sourceLocation: sourceLocation)
}

/// Counts its runs per task in memory the test owns.
private struct CountingTasks: ParallelTasks {
    let counts: UnsafeMutablePointer<Int>

    func run(_ task: Int) { counts[task] += 1 }
}

/// Runs the ``ParallelTasks`` form of `parallelFor(taskCount)` and expects every count is 1.
private func expectEveryStructTaskRunsOnce(
    taskCount: Int, threadCount: Int, sourceLocation: SourceLocation = #_sourceLocation
) {
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: max(1, taskCount))
    defer { counts.deallocate() }
    counts.initialize(repeating: 0, count: max(1, taskCount))
    ComputeContext(threadCount: threadCount).parallelFor(taskCount, CountingTasks(counts: counts))
    let wrong = (0..<taskCount).filter { counts[$0] != 1 }
    #expect(
        wrong.isEmpty, "tasks \(wrong.prefix(5)) ran \(wrong.prefix(5).map { counts[$0] }) times",
        sourceLocation: sourceLocation)
}

/// Counts its runs per item, and records the size of every block it is handed.
private struct CountingRanges: ParallelRanges {
    let counts: UnsafeMutablePointer<Int>
    let blockSizes: UnsafeMutablePointer<Int>

    func run(_ range: Range<Int>) {
        for item in range { counts[item] += 1 }
        blockSizes[range.lowerBound] = range.count
    }
}

/// Records the thread of every outer task and of every task of a `parallelFor` nested in it.
private struct NestedTasks: ParallelTasks {
    let context: ComputeContext
    let inner: Int
    let threads: UnsafeMutablePointer<pthread_t>
    let counts: UnsafeMutablePointer<Int>

    func run(_ task: Int) {
        threads[task * (inner + 1)] = pthread_self()
        context.parallelFor(inner, InnerTasks(outer: task, inner: inner, threads: threads, counts: counts))
    }

    struct InnerTasks: ParallelTasks {
        let outer: Int
        let inner: Int
        let threads: UnsafeMutablePointer<pthread_t>
        let counts: UnsafeMutablePointer<Int>

        func run(_ task: Int) {
            threads[outer * (inner + 1) + 1 + task] = pthread_self()
            counts[outer * inner + task] += 1
        }
    }
}

@Suite struct ThreadPoolTests {
    @Test(arguments: [0, 1, 2, 3, 17, 1000], [1, 2, 4])
    func everyTaskRunsExactlyOnce(taskCount: Int, threadCount: Int) {
        expectEveryTaskRunsOnce(taskCount: taskCount, threadCount: threadCount)
    }

    @Test(arguments: [0, 1, 2, 3, 17, 1000], [1, 2, 4])
    func everyStructTaskRunsExactlyOnce(taskCount: Int, threadCount: Int) {
        expectEveryStructTaskRunsOnce(taskCount: taskCount, threadCount: threadCount)
    }

    /// Blocks of `blockSize` consecutive items from 0, the last one shorter, each item once.
    @Test(arguments: [0, 1, 16, 17, 1000], [1, 2, 4])
    func everyRangeItemRunsOnceInFixedBlocks(count: Int, threadCount: Int) {
        for blockSize in [1, 3, 16, 5000] {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: max(1, count))
            let sizes = UnsafeMutablePointer<Int>.allocate(capacity: max(1, count))
            defer {
                counts.deallocate()
                sizes.deallocate()
            }
            counts.initialize(repeating: 0, count: max(1, count))
            sizes.initialize(repeating: -1, count: max(1, count))
            ComputeContext(threadCount: threadCount).parallelFor(
                count, blockSize: blockSize, CountingRanges(counts: counts, blockSizes: sizes))
            #expect((0..<count).allSatisfy { counts[$0] == 1 }, "count \(count) block \(blockSize)")
            for start in 0..<count {
                let expected = start % blockSize == 0 ? min(blockSize, count - start) : -1
                #expect(sizes[start] == expected, "block at \(start), count \(count), size \(blockSize)")
            }
        }
    }

    @Test func nestedStructCallRunsInlineOnTheTasksThread() {
        let outer = 8
        let inner = 5
        let threads = UnsafeMutablePointer<pthread_t>.allocate(capacity: outer * (inner + 1))
        defer { threads.deallocate() }
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: outer * inner)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: outer * inner)
        let context = ComputeContext(threadCount: 2)
        context.parallelFor(outer, NestedTasks(context: context, inner: inner, threads: threads, counts: counts))
        for task in 0..<outer {
            let base = task * (inner + 1)
            for innerTask in 0..<inner {
                #expect(pthread_equal(threads[base], threads[base + 1 + innerTask]) != 0, "task \(task).\(innerTask)")
                #expect(counts[task * inner + innerTask] == 1, "task \(task).\(innerTask)")
            }
        }
    }

    @Test func nestedCallRunsInlineOnTheTasksThread() {
        let outer = 8
        let inner = 5
        let threads = UnsafeMutablePointer<pthread_t>.allocate(capacity: outer * (inner + 1))
        defer { threads.deallocate() }
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: outer * inner)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: outer * inner)
        let context = ComputeContext(threadCount: 2)
        context.parallelFor(outer) { task in
            threads[task * (inner + 1)] = pthread_self()
            context.parallelFor(inner) { innerTask in
                threads[task * (inner + 1) + 1 + innerTask] = pthread_self()
                counts[task * inner + innerTask] += 1
            }
        }
        for task in 0..<outer {
            let base = task * (inner + 1)
            for innerTask in 0..<inner {
                #expect(pthread_equal(threads[base], threads[base + 1 + innerTask]) != 0, "task \(task).\(innerTask)")
                #expect(counts[task * inner + innerTask] == 1, "task \(task).\(innerTask)")
            }
        }
    }

    @Test func concurrentCallersEachGetTheirResults() async {
        let callers = 8
        let length = 4099
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for caller in 0..<callers {
                group.addTask {
                    var correct = true
                    for round in 0..<50 {
                        let output = UnsafeMutablePointer<Int>.allocate(capacity: length)
                        output.initialize(repeating: -1, count: length)
                        let context = ComputeContext(threadCount: 1 + caller % 3)
                        // 13 tasks of contiguous ranges, the last one shorter.
                        context.parallelFor(13) { task in
                            let start = task * 316
                            for index in start..<min(length, start + 316) { output[index] = index * caller + round }
                        }
                        for index in 0..<length where output[index] != index * caller + round { correct = false }
                        output.deallocate()
                    }
                    return (caller, correct)
                }
            }
            var results: [(Int, Bool)] = []
            for await result in group { results.append(result) }
            return results
        }
        #expect(results.count == callers)
        for (caller, correct) in results { #expect(correct, "caller \(caller)") }
    }

    @Test func concurrentCallersFromThreads() {
        nonisolated(unsafe) let wrong = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        defer { wrong.deallocate() }
        wrong.initialize(repeating: 0, count: 8)
        DispatchQueue.concurrentPerform(iterations: 8) { caller in
            let sums = UnsafeMutablePointer<Int>.allocate(capacity: 64)
            defer { sums.deallocate() }
            for round in 0..<200 {
                ComputeContext(threadCount: 2).parallelFor(64) { task in sums[task] = task * round + caller }
                for task in 0..<64 where sums[task] != task * round + caller { wrong[caller] += 1 }
            }
        }
        for caller in 0..<8 { #expect(wrong[caller] == 0, "caller \(caller)") }
    }

    /// Back-to-back small jobs, some after a pause long enough for the workers to sleep: a lost
    /// wake-up would hang here (the caller does not wait for workers that never joined, so a hang
    /// means a worker joined and never left, or the state machine broke).
    @Test func manySmallCallsInARowFinish() {
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: 4)
        let context = ComputeContext(threadCount: 2)
        for call in 0..<10_000 {
            context.parallelFor(2 + call % 3) { task in counts[task] += 1 }
            if call % 1000 == 999 { usleep(300) }
        }
        // Tasks 0 and 1 run on every call, task 2 on 2/3 of them, task 3 on 1/3.
        #expect(counts[0] == 10_000)
        #expect(counts[1] == 10_000)
        #expect(counts[2] == 6_666)
        #expect(counts[3] == 3_333)
    }

    @Test func resultsDoNotDependOnTheThreadCount() {
        // A kernel-like reduction per task: each task's order is fixed, so every thread count
        // must produce the same bits.
        func run(threads: Int) -> [Float] {
            var output = [Float](repeating: 0, count: 37)
            output.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress.unsafelyUnwrapped
                ComputeContext(threadCount: threads).parallelFor(37) { task in
                    var sum: Float = 0
                    for index in 0..<1000 { sum += 1 / Float(index * 37 + task + 1) }
                    base[task] = sum
                }
            }
            return output
        }
        let single = run(threads: 1)
        #expect(run(threads: 2) == single)
        #expect(run(threads: 4) == single)
    }
}
