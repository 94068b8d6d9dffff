import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

/// The performance passes: SiLU into convolutions, spatial ReduceMean into GlobalAveragePool.
@Suite struct FusionPassTests {
    /// Weights in [−scale, scale] from a linear congruential generator.
    struct Values {
        var state: UInt64
        let scale: Float

        mutating func next(_ count: Int) -> [Float] {
            (0..<count).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int(state >> 40) % 2001 - 1000) / 1000 * scale
            }
        }
    }

    /// x → Conv → y; Sigmoid(y) → s; Mul(order) → z; ReduceMean(z, axes) → m.
    func siluGraph(mulInputs: [String], axes: [Int64] = [-1, -2], keepdims: Int = 1) -> Graph {
        var random = Values(state: 5, scale: 1)
        func values(_ count: Int) -> [Float] { random.next(count) }
        let nodes = [
            Node(
                name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "sig", opType: "Sigmoid", inputs: ["y"], outputs: ["s"]),
            Node(name: "mul", opType: "Mul", inputs: mulInputs, outputs: ["z"]),
            Node(
                name: "mean", opType: "ReduceMean", inputs: ["z", "axes"], outputs: ["m"],
                attributes: ["keepdims": .int(keepdims)]),
        ]
        return Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(3), .fixed(6), .fixed(5)])],
            outputs: [ValueInfo(name: "m", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: [
                "w": Tensor(shape: [4, 3, 3, 3], scalars: values(108)), "b": Tensor(shape: [4], scalars: values(4)),
                "axes": Tensor(shape: [2], scalars: axes),
            ], opsetImports: ["": 18])
    }

    @Test func fusesSiLUAndRewritesMeanWithSameResult() throws {
        for order in [["y", "s"], ["s", "y"]] {
            let graph = siluGraph(mulInputs: order)
            let optimized = try Optimizer.optimize(graph)
            #expect(optimized.nodes.map(\.opType) == ["FusedConv", "GlobalAveragePool"], "\(order)")
            #expect(optimized.nodes.first?.attributes["activation"].map { "\($0)" }?.contains("SiLU") == true)
            let x = Tensor(shape: [1, 3, 6, 5], scalars: (0..<90).map { Float($0 % 17) / 4 - 2 })
            let plain = try GraphRunner(graph: graph, options: .init(optimize: false)).run(["x": x])
            let fused = try GraphRunner(graph: graph, options: .init(optimize: true)).run(["x": x])
            let a = try #require(plain["m"]).scalars(as: Float.self)
            let b = try #require(fused["m"]).scalars(as: Float.self)
            #expect(try #require(fused["m"]).shape == [1, 4, 1, 1])
            #expect(a.count == 4)
            for (u, v) in zip(a, b) { #expect(abs(u - v) <= 1e-5 * max(1, abs(u))) }
        }
    }

    /// x → 1 × 1 expansion → depthwise 3 × 3 → 1 × 1 projection ("proj"), plus a 1 × 1 layer
    /// reading the expansion ("side") and a grouped 1 × 1 layer reading the depthwise output
    /// ("grouped").
    func invertedResidualGraph() -> Graph {
        var random = Values(state: 7, scale: 0.25)
        func values(_ count: Int) -> [Float] { random.next(count) }
        let nodes = [
            Node(name: "expand", opType: "Conv", inputs: ["x", "we"], outputs: ["e"]),
            Node(
                name: "dw", opType: "Conv", inputs: ["e", "wd", "bd"], outputs: ["d"],
                attributes: ["group": .int(256), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "proj", opType: "Conv", inputs: ["d", "wp", "bp"], outputs: ["y"]),
            Node(name: "side", opType: "Conv", inputs: ["e", "wp"], outputs: ["s"]),
            Node(name: "grouped", opType: "Conv", inputs: ["d", "wg"], outputs: ["g"], attributes: ["group": .int(2)]),
        ]
        return Graph(
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(8), .fixed(14), .fixed(14)])
            ],
            outputs: ["y", "s", "g"].map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) }, nodes: nodes,
            initializers: [
                "we": Tensor(shape: [256, 8, 1, 1], scalars: values(2048)),
                "wd": Tensor(shape: [256, 1, 3, 3], scalars: values(2304)),
                "bd": Tensor(shape: [256], scalars: values(256)),
                "wp": Tensor(shape: [64, 256, 1, 1], scalars: values(16384)),
                "bp": Tensor(shape: [64], scalars: values(64)),
                "wg": Tensor(shape: [64, 128, 1, 1], scalars: values(8192)),
            ], opsetImports: ["": 18])
    }

    /// Only the projection reading the depthwise output is marked for a split reduction; the
    /// optimized graph computes what the plain one does, within rounding, and the same bits at 1
    /// and 2 threads.
    @Test func marksProjectionsAfterDepthwiseLayers() throws {
        let graph = invertedResidualGraph()
        let optimized = try Optimizer.optimize(graph)
        func node(_ name: String) throws -> Node { try #require(optimized.nodes.first { $0.name == name }) }
        #expect(try node("proj").opType == "FusedConv")
        #expect(try node("proj").int(MarkReductionSplits.attribute, default: 0) == 1)
        for name in ["expand", "dw", "side", "grouped"] {
            #expect(try node(name).attributes[MarkReductionSplits.attribute] == nil, "\(name)")
        }
        let x = Tensor(shape: [1, 8, 14, 14], scalars: (0..<1568).map { Float($0 % 23) / 8 - 1.4 })
        let plain = try GraphRunner(graph: graph, options: .init(optimize: false)).run(["x": x])
        var results: [[String: Tensor]] = []
        for threads in [1, 2] {
            results.append(
                try GraphRunner(graph: graph, options: .init(plan: .init(threadCount: threads))).run(["x": x]))
        }
        for name in ["y", "s", "g"] {
            let a = try #require(plain[name]).scalars(as: Float.self)
            let one = try #require(results[0][name]).scalars(as: Float.self)
            let two = try #require(results[1][name]).scalars(as: Float.self)
            #expect(one.count == a.count && !a.isEmpty, "\(name)")
            let scale = max(1, a.map { abs($0) }.max() ?? 1)
            for (u, v) in zip(a, one) { #expect(abs(u - v) <= 1e-5 * 16 * scale, "\(name)") }
            #expect(one.map(\.bitPattern) == two.map(\.bitPattern), "\(name) at 1 and 2 threads")
        }
    }

    @Test func leavesOtherPatternsAlone() throws {
        // Mul of y with itself is not SiLU; keepdims 0 and a non-spatial axis are not a global pool.
        let square = try Optimizer.optimize(siluGraph(mulInputs: ["y", "y"]))
        #expect(square.nodes.map(\.opType).contains("Sigmoid"))
        let flat = try Optimizer.optimize(siluGraph(mulInputs: ["y", "s"], keepdims: 0))
        #expect(flat.nodes.map(\.opType).contains("ReduceMean"))
        let channels = try Optimizer.optimize(siluGraph(mulInputs: ["y", "s"], axes: [1, 2]))
        #expect(channels.nodes.map(\.opType).contains("ReduceMean"))
    }
}
