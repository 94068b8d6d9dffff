import ApusOps
import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// The planner joins a channel-scaling `Mul` (the end of a squeeze-and-excitation block) with the
/// 1 × 1 convolution that alone reads it (``ScaledInputConv``): the weights are scaled per image
/// instead of the map. The joined plan must agree with the separate steps within rounding, be
/// bitwise the same at 1 and 2 threads, and stay unjoined where it would not pay or not apply.
@Suite(
    .enabled(
        if: PackedGemm.hasAVX512,
        "the joined step needs packed weights, which AVX2 CPUs keep for reductions up to 32 only"))
struct ScaledInputConvTests {
    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed) * 0.37)) * 0.5 }
    }

    /// A squeeze-and-excitation block's end on the map `x` of `channels` channels:
    /// GlobalAveragePool → 1 × 1 Conv (`squeeze`) + Relu → 1 × 1 Conv (`channels`) + Sigmoid = s →
    /// Mul(x, `scale`, which is s unless given) = m → 1 × 1 Conv (`projected`, bias) → y; weights
    /// from seeds `seed` to `seed + 5`.
    static func squeezeExcitation(
        of x: String, channels: Int, squeeze: Int, projected: Int, scale: String = "s", seed: Int
    ) -> (nodes: [Node], initializers: [String: Tensor]) {
        (
            [
                Node(name: "pool", opType: "GlobalAveragePool", inputs: [x], outputs: ["g"]),
                Node(name: "reduce", opType: "Conv", inputs: ["g", "w1", "b1"], outputs: ["c1"]),
                Node(name: "relu", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
                Node(name: "expand", opType: "Conv", inputs: ["r1", "w2", "b2"], outputs: ["c2"]),
                Node(name: "sigmoid", opType: "Sigmoid", inputs: ["c2"], outputs: ["s"]),
                Node(name: "mul", opType: "Mul", inputs: [x, scale], outputs: ["m"]),
                Node(name: "project", opType: "Conv", inputs: ["m", "w3", "b3"], outputs: ["y"]),
            ],
            [
                "w1": Tensor(shape: [squeeze, channels, 1, 1], scalars: values(squeeze * channels, seed: seed)),
                "b1": Tensor(shape: [squeeze], scalars: values(squeeze, seed: seed + 1)),
                "w2": Tensor(shape: [channels, squeeze, 1, 1], scalars: values(channels * squeeze, seed: seed + 2)),
                "b2": Tensor(shape: [channels], scalars: values(channels, seed: seed + 3)),
                "w3": Tensor(
                    shape: [projected, channels, 1, 1], scalars: values(projected * channels, seed: seed + 4)),
                "b3": Tensor(shape: [projected], scalars: values(projected, seed: seed + 5)),
            ]
        )
    }

    /// x [batch, 32, size, size] → ``squeezeExcitation(of:channels:squeeze:projected:scale:seed:)``
    /// (8, 16) → y, with Mul(x, t) instead, t a [1, 1, size, size] input, when `spatialScale`; with
    /// `alsoOutput` the product is a graph output too.
    static func graph(size: Int, spatialScale: Bool = false, alsoOutput: Bool = false) -> Graph {
        var inputs = [
            ValueInfo(
                name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(32), .fixed(size), .fixed(size)])
        ]
        if spatialScale {
            inputs.append(
                ValueInfo(name: "t", dtype: .float32, dimensions: [.fixed(1), .fixed(1), .fixed(size), .fixed(size)]))
        }
        var outputs = [ValueInfo(name: "y", dtype: nil, dimensions: nil)]
        if alsoOutput { outputs.append(ValueInfo(name: "m", dtype: nil, dimensions: nil)) }
        let block = squeezeExcitation(
            of: "x", channels: 32, squeeze: 8, projected: 16, scale: spatialScale ? "t" : "s", seed: 1)
        return Graph(inputs: inputs, outputs: outputs, nodes: block.nodes, initializers: block.initializers)
    }

    static func feeds(batch: Int, size: Int, spatialScale: Bool = false) -> [String: Tensor] {
        var feeds = ["x": Tensor(shape: [batch, 32, size, size], scalars: values(batch * 32 * size * size, seed: 7))]
        if spatialScale { feeds["t"] = Tensor(shape: [1, 1, size, size], scalars: values(size * size, seed: 8)) }
        return feeds
    }

    static func run(
        _ graph: Graph, _ feeds: [String: Tensor], threads: Int, join: Bool, split: Bool = true
    ) throws -> (y: [Float], steps: [String]) {
        let runner = try GraphRunner(
            graph: graph,
            options: .init(plan: .init(threadCount: threads, joinsScaledInputs: join), splitBatches: split))
        // A split batch runs on the plan of its first sample's shapes.
        let ordered = try runner.orderedInputs(feeds).map { tensor in
            guard split, tensor.shape[0] > 1 else { return tensor }
            let values = try tensor.scalars(as: Float.self)
            return Tensor(
                shape: Shape([1] + tensor.shape.dimensions.dropFirst()),
                scalars: Array(values.prefix(values.count / tensor.shape[0])))
        }
        let plan = try runner.plan(for: ordered)
        let y = try #require(try runner.run(feeds)["y"])
        return (try y.scalars(as: Float.self), plan.stepSummaries.map(\.opType))
    }

    /// Batch 1, batch 2 sample by sample (scales shared per plan) and as one whole-batch plan
    /// (per-image scales): the joined step replaces Mul + Conv and agrees with them within a few
    /// ulp of the output's scale; 1 and 2 threads give the same bits.
    @Test(arguments: [(1, true), (2, true), (2, false)])
    func joinedStepAgreesWithTheSeparateSteps(_ shape: (Int, Bool)) throws {
        let (batch, split) = shape
        let graph = Self.graph(size: 28)
        let feeds = Self.feeds(batch: batch, size: 28)
        let separate = try Self.run(graph, feeds, threads: 1, join: false, split: split)
        #expect(!separate.steps.contains("ScaledInputConv"))
        #expect(separate.steps.contains("Mul"))
        let joined = try Self.run(graph, feeds, threads: 1, join: true, split: split)
        #expect(joined.steps.contains("ScaledInputConv"), "\(joined.steps)")
        #expect(!joined.steps.contains("Mul"))
        let scale = separate.y.map(abs).max() ?? 0
        let worst = zip(joined.y, separate.y).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-5 * scale, "max difference \(worst) against max |y| \(scale)")
        let two = try Self.run(graph, feeds, threads: 2, join: true, split: split)
        #expect(two.y == joined.y)
    }

    /// x [1, 256, size, size] → depthwise 3 × 3 → d →
    /// ``squeezeExcitation(of:channels:squeeze:projected:scale:seed:)`` (16, 64) → y: an
    /// EfficientNet block's end.
    static func depthwiseBlock(size: Int) -> Graph {
        let block = squeezeExcitation(of: "d", channels: 256, squeeze: 16, projected: 64, seed: 13)
        return Graph(
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(256), .fixed(size), .fixed(size)])
            ],
            outputs: [ValueInfo(name: "y", dtype: nil, dimensions: nil)],
            nodes: [
                Node(
                    name: "dw", opType: "Conv", inputs: ["x", "wd", "bd"], outputs: ["d"],
                    attributes: ["group": .int(256), "pads": .ints([1, 1, 1, 1])])
            ] + block.nodes,
            initializers: block.initializers.merging([
                "wd": Tensor(shape: [256, 1, 3, 3], scalars: values(256 * 9, seed: 11)),
                "bd": Tensor(shape: [256], scalars: values(256, seed: 12)),
            ]) { first, _ in first })
    }

    /// The projection after a depthwise layer's scaled output is marked for a split reduction and
    /// joined with the `Mul` on 14² maps (where the weights are the smaller and are scaled) and on
    /// 7² maps (where the input is, and only a split layer joins); it agrees with the unoptimized
    /// graph within rounding and gives the same bits at 1, 2 and 3 threads.
    @Test(arguments: [14, 7])
    func splitProjectionAfterAScaledDepthwiseLayer(_ size: Int) throws {
        let graph = Self.depthwiseBlock(size: size)
        let optimized = try Optimizer.optimize(graph)
        let project = try #require(optimized.nodes.first { $0.name == "project" })
        #expect(try project.int(MarkReductionSplits.attribute, default: 0) == 1)
        let x = Tensor(shape: [1, 256, size, size], scalars: Self.values(256 * size * size, seed: 19))
        let plain = try #require(try GraphRunner(graph: graph, options: .init(optimize: false)).run(["x": x])["y"])
        let expected = try plain.scalars(as: Float.self)
        let scale = max(1, expected.map(abs).max() ?? 1)
        var first: [Float]? = nil
        for threads in [1, 2, 3] {
            let runner = try GraphRunner(graph: graph, options: .init(plan: .init(threadCount: threads)))
            let steps = try runner.plan(for: [x]).stepSummaries.map(\.opType)
            #expect(steps.contains("ScaledInputConv") && !steps.contains("Mul"), "\(steps)")
            let y = try #require(try runner.run(["x": x])["y"]).scalars(as: Float.self)
            let worst = zip(y, expected).map { abs($0 - $1) }.max() ?? .infinity
            #expect(y.count == expected.count && worst <= 1e-5 * 16 * scale, "\(threads) threads: \(worst)")
            if let first { #expect(y.map(\.bitPattern) == first.map(\.bitPattern), "\(threads) threads") }
            first = first ?? y
        }
    }

    /// Unjoined: when the packed weights (16 × 32) outweigh a 3 × 3 map of 32 channels, when the product is also a graph output, and when the scale varies over space.
    @Test func staysUnjoinedWhereItDoesNotApply() throws {
        for (graph, feeds) in [
            (Self.graph(size: 3), Self.feeds(batch: 1, size: 3)),
            (Self.graph(size: 28, alsoOutput: true), Self.feeds(batch: 1, size: 28)),
            (Self.graph(size: 28, spatialScale: true), Self.feeds(batch: 1, size: 28, spatialScale: true)),
        ] {
            let result = try Self.run(graph, feeds, threads: 1, join: true)
            #expect(!result.steps.contains("ScaledInputConv"), "\(result.steps)")
            #expect(result.steps.contains("Mul"))
        }
    }
}
