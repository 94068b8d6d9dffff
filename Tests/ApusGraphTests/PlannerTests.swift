import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct PlannerTests {
    /// x → Identity → a → Identity → b → Identity → y: a chain whose intermediate buffers can share memory.
    func chain(length: Int) -> Graph {
        var nodes: [Node] = []
        var previous = "x"
        for index in 0..<length {
            let output = index == length - 1 ? "y" : "v\(index)"
            nodes.append(Node(name: "n\(index)", opType: "Identity", inputs: [previous], outputs: [output]))
            previous = output
        }
        return Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(4)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes)
    }

    @Test func runsAChainAndReusesArenaMemory() throws {
        let runner = try GraphRunner(graph: chain(length: 6), options: .init(optimize: false))
        let input = Tensor(shape: [3, 4], scalars: (0..<12).map(Float.init))
        let outputs = try runner.run(["x": input])
        let y = try #require(outputs["y"])
        #expect(y.isBitwiseEqual(to: input))
        let plan = try runner.plan(for: [input])
        // Six steps of 48 bytes (64 aligned): liveness lets two buffers alternate.
        #expect(plan.stepCount == 6)
        #expect(plan.arenaByteCount == 128)
    }

    @Test func runsIntoCallerOutputsInPlace() throws {
        let runner = try GraphRunner(graph: chain(length: 3), options: .init(maxCachedPlans: 1, optimize: false))
        let first = Tensor(shape: [2, 4], scalars: (0..<8).map(Float.init))
        let second = Tensor(shape: [2, 4], scalars: (0..<8).map { Float(100 - $0) })
        let wider = Tensor(shape: [3, 4], scalars: (0..<12).map { Float($0 * 3) })
        var outputs: [String: Tensor] = [:]
        try runner.run(["x": first], into: &outputs)
        let y = try #require(outputs["y"])
        #expect(y.isBitwiseEqual(to: first))
        // Same shape: the very same storage is overwritten.
        try runner.run(["x": second], into: &outputs)
        let reused = try #require(outputs["y"])
        #expect(reused.rawPointer == y.rawPointer)
        #expect(y.isBitwiseEqual(to: second))
        // Another shape (evicting the only cached plan): a fresh tensor, the old one untouched.
        try runner.run(["x": wider], into: &outputs)
        let replaced = try #require(outputs["y"])
        #expect(replaced.shape == [3, 4])
        #expect(replaced.isBitwiseEqual(to: wider))
        #expect(y.isBitwiseEqual(to: second))
        // And back, alternating shapes through the cache.
        try runner.run(["x": first], into: &outputs)
        #expect(outputs["y"]?.isBitwiseEqual(to: first) == true)
        #expect(throws: GraphError.self) { try runner.run(["z": first], into: &outputs) }
    }

    @Test func cachesPlansPerShapeWithABound() throws {
        let runner = try GraphRunner(graph: chain(length: 2), options: .init(maxCachedPlans: 2, optimize: false))
        let shapes = [1, 2, 3].map { Tensor(shape: [$0, 4], scalars: [Float](repeating: 1, count: $0 * 4)) }
        let first = try runner.plan(for: [shapes[0]])
        #expect(try runner.plan(for: [shapes[0]]) === first)
        _ = try runner.plan(for: [shapes[1]])
        _ = try runner.plan(for: [shapes[2]])
        // The oldest plan was evicted, so asking again makes a new one.
        #expect(try runner.plan(for: [shapes[0]]) !== first)
    }

    @Test func validatesInputs() throws {
        let runner = try GraphRunner(
            graph: Graph(
                inputs: [
                    ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(4)]),
                    ValueInfo(name: "w", dtype: .float32, dimensions: [.symbolic("batch")]),
                ],
                outputs: [ValueInfo(name: "x", dtype: nil, dimensions: nil)]), options: .init(optimize: false))
        let good = Tensor(shape: [2, 4], scalars: [Float](repeating: 0, count: 8))
        let w2 = Tensor(shape: [2], scalars: [Float](repeating: 0, count: 2))
        let w3 = Tensor(shape: [3], scalars: [Float](repeating: 0, count: 3))
        #expect(try runner.run(["x": good, "w": w2])["x"]?.isBitwiseEqual(to: good) == true)
        #expect(throws: GraphError.self) { try runner.run(["x": good]) }
        #expect(throws: GraphError.self) { try runner.run(["x": good, "w": w2, "extra": w2]) }
        // The symbol "batch" is 2 in x and 3 in w.
        #expect {
            try runner.run(["x": good, "w": w3])
        } throws: { error in
            guard case GraphError.inputShapeMismatch("w", _, [3], _) = error else { return false }
            return true
        }
        let wrongWidth = Tensor(shape: [2, 5], scalars: [Float](repeating: 0, count: 10))
        #expect(throws: GraphError.self) { try runner.run(["x": wrongWidth, "w": w2]) }
        let wrongType = Tensor(shape: [2, 4], scalars: [Int64](repeating: 0, count: 8))
        #expect {
            try runner.run(["x": wrongType, "w": w2])
        } throws: { error in
            guard case GraphError.inputDTypeMismatch("x", expected: .float32, actual: .int64) = error else {
                return false
            }
            return true
        }
    }

    @Test func removesIdentitiesButKeepsNamedOutputs() throws {
        let optimized = try Optimizer.optimize(chain(length: 4))
        #expect(optimized.nodes.count == 1)
        #expect(optimized.nodes[0].inputs == ["x"])
        #expect(optimized.nodes[0].outputs == ["y"])
    }
}
