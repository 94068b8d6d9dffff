import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct TopologyTests {
    func identity(_ name: String, _ input: String, _ output: String) -> Node {
        Node(name: name, opType: "Identity", inputs: [input], outputs: [output])
    }

    @Test func sortsOutOfOrderNodes() throws {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "z", dtype: .float32, dimensions: nil)],
            nodes: [identity("second", "y", "z"), identity("first", "x", "y")])
        let order = try Topology.sortedNodeIndices(of: graph)
        #expect(order == [1, 0])
    }

    @Test func rejectsDuplicateProducers() {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [identity("a", "x", "y"), identity("b", "x", "y")])
        #expect {
            try Topology.sortedNodeIndices(of: graph)
        } throws: { error in
            guard case GraphError.duplicateProducer("y", let producers) = error else { return false }
            return producers == ["node 'a'", "node 'b'"]
        }
    }

    @Test func rejectsCycles() {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "b", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "n1", opType: "Add", inputs: ["x", "b"], outputs: ["a"]),
                identity("n2", "a", "b"),
            ])
        #expect {
            try Topology.sortedNodeIndices(of: graph)
        } throws: { error in
            guard case GraphError.cycle(let nodes) = error else { return false }
            return Set(nodes) == ["n1", "n2"]
        }
    }

    @Test func rejectsDanglingValues() {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [identity("n", "nowhere", "y")])
        #expect {
            try Topology.sortedNodeIndices(of: graph)
        } throws: { error in
            guard case GraphError.undefinedValue("nowhere", node: "n") = error else { return false }
            return true
        }
    }

    @Test func rejectsOutputsNothingProduces() {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "missing", dtype: .float32, dimensions: nil)])
        #expect(throws: GraphError.self) { try Topology.sortedNodeIndices(of: graph) }
    }

    @Test func reportsEveryUnsupportedOperatorAtOnce() {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "c", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "f1", opType: "FancyOp", inputs: ["x"], outputs: ["a"]),
                Node(name: "f2", opType: "FancyOp", inputs: ["a"], outputs: ["b"]),
                Node(name: "g", opType: "Frobnicate", domain: "com.example", inputs: ["b"], outputs: ["c"]),
            ])
        #expect {
            try Topology.buildOperators(for: graph)
        } throws: { error in
            guard case GraphError.unsupportedOperators(let byType) = error else { return false }
            return byType == ["FancyOp": ["f1", "f2"], "com.example.Frobnicate": ["g"]]
        }
    }
}

@Suite struct ArenaAllocatorTests {
    @Test func reusesFreedBlocksAndCoalesces() {
        var allocator = ArenaAllocator()
        let a = allocator.allocate(100)  // 128
        let b = allocator.allocate(64)
        let c = allocator.allocate(200)  // 256
        #expect([a, b, c] == [0, 128, 192])
        allocator.free(offset: a, byteCount: 100)
        allocator.free(offset: b, byteCount: 64)
        // The two freed neighbours form one 192-byte block that a 150-byte request fits.
        #expect(allocator.allocate(150) == 0)
        #expect(allocator.highWater == 448)
        allocator.free(offset: c, byteCount: 200)
        // Growing reuses the free tail instead of appending after it.
        #expect(allocator.allocate(1000) == 192)
        #expect(allocator.highWater == 192 + 1024)
    }
}
