import Apus
import Dispatch
import Foundation
import Testing

/// One shared `Model` serving several threads at once, and thread-count independence.
@Suite(.serialized) struct ConcurrencyTests {
    static let modelName = "resnet18"

    func fixture() throws -> URL? {
        guard Fixtures.modelNames.contains(Self.modelName), let directory = Fixtures.modelsDirectory else {
            if Fixtures.required { Issue.record("fixture \(Self.modelName) missing") }
            return nil
        }
        return directory.appending(path: "\(Self.modelName)/model.onnx")
    }

    func inputs(count: Int) -> [Tensor] {
        (0..<count).map { seed in
            var state = UInt64(seed + 1) &* 0x9E37_79B9_7F4A_7C15
            let values = (0..<(3 * 224 * 224)).map { _ -> Float in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
            }
            return Tensor(shape: [1, 3, 224, 224], scalars: values)
        }
    }

    @Test func fourThreadsShareOneModel() throws {
        guard let url = try fixture() else { return }
        let model = try Model(contentsOf: url, options: .init(threadCount: 1))
        let name = try #require(model.inputs.first?.name)
        let output = try #require(model.outputs.first?.name)
        let feeds = inputs(count: 4)
        let expected = try feeds.map { try #require(model.run([name: $0])[output]) }
        let results = Mutex4()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for round in 0..<3 {
                let index = (worker + round) % 4
                let result = try? model.run([name: feeds[index]])[output]
                results.record(worker: worker, round: round, index: index, tensor: result)
            }
        }
        for (index, tensor) in results.all() {
            #expect(tensor?.isBitwiseEqual(to: expected[index]) == true, "input \(index) differs under concurrency")
        }
        #expect(results.all().count == 12)
    }

    @Test func oneAndTwoIntraOpThreadsAgreeBitwise() throws {
        guard let url = try fixture() else { return }
        let one = try Model(contentsOf: url, options: .init(threadCount: 1))
        let two = try Model(contentsOf: url, options: .init(threadCount: 2))
        let name = try #require(one.inputs.first?.name)
        let output = try #require(one.outputs.first?.name)
        for feed in inputs(count: 2) {
            let a = try #require(one.run([name: feed])[output])
            let b = try #require(two.run([name: feed])[output])
            #expect(a.isBitwiseEqual(to: b))
        }
    }
}

/// Results collected from several threads.
final class Mutex4: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(Int, Tensor?)] = []

    func record(worker: Int, round: Int, index: Int, tensor: Tensor?) {
        lock.lock()
        entries.append((index, tensor))
        lock.unlock()
    }

    func all() -> [(Int, Tensor?)] {
        lock.lock()
        defer { lock.unlock() }
        return entries
    }
}
