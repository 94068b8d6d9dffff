import ApusOps
import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// The planner joins a 1 × 1 convolution and the stride-2 depthwise convolution that alone reads
/// its output into one step (``ExpandDepthwise``). The joined step must give the unjoined plan's
/// results bit for bit, at 1 and 2 threads, and must not fire when the expanded map is needed
/// elsewhere.
@Suite(.enabled(if: PackedGemm.hasAVX512, "the joined step needs the AVX-512 kernels"))
struct ExpandDepthwiseTests {
    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed) * 0.37)) * 0.5 }
    }

    /// x [1, 8, H, W] → 1 × 1 FusedConv to `channels` (bias, `expansion` activation) → 3 × 3
    /// stride-2 depthwise FusedConv (bias, `depthwise` activation) → y; with `alsoOutput` the
    /// expanded map is a graph output too.
    static func graph(
        channels: Int, height: Int, width: Int, expansion: String, depthwise: String, alsoOutput: Bool = false
    ) -> Graph {
        var outputs = [ValueInfo(name: "y", dtype: nil, dimensions: nil)]
        if alsoOutput { outputs.append(ValueInfo(name: "e", dtype: nil, dimensions: nil)) }
        func params(_ activation: String) -> [Float] { activation == "Clip" ? [0, 6] : [] }
        return Graph(
            inputs: [
                ValueInfo(
                    name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(8), .fixed(height), .fixed(width)])
            ],
            outputs: outputs,
            nodes: [
                Node(
                    name: "expand", opType: "FusedConv", domain: Node.apusDomain, inputs: ["x", "w1", "b1"],
                    outputs: ["e"],
                    attributes: [
                        "kernel_shape": .ints([1, 1]), "activation": .string(expansion),
                        "activation_params": .floats(params(expansion)),
                    ]),
                Node(
                    name: "depthwise", opType: "FusedConv", domain: Node.apusDomain, inputs: ["e", "w2", "b2"],
                    outputs: ["y"],
                    attributes: [
                        "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                        "group": .int(channels), "activation": .string(depthwise),
                        "activation_params": .floats(params(depthwise)),
                    ]),
            ],
            initializers: [
                "w1": Tensor(shape: [channels, 8, 1, 1], scalars: values(channels * 8, seed: 1)),
                "b1": Tensor(shape: [channels], scalars: values(channels, seed: 2)),
                "w2": Tensor(shape: [channels, 1, 3, 3], scalars: values(channels * 9, seed: 3)),
                "b2": Tensor(shape: [channels], scalars: values(channels, seed: 4)),
            ])
    }

    func run(_ graph: Graph, _ x: Tensor, threads: Int, join: Bool) throws -> (Tensor, [String]) {
        let runner = try GraphRunner(
            graph: graph, options: .init(plan: .init(threadCount: threads, joinsExpansions: join), optimize: false))
        let plan = try runner.plan(for: [x])
        let y = try #require(try runner.run(["x": x])["y"])
        return (y, plan.stepSummaries.map(\.opType))
    }

    /// Maps of at least 4 MB expanded (the joining threshold), odd sizes, every activation pairing
    /// the kernels apply: the joined step's output equals the unjoined plan's, bit for bit.
    @Test(arguments: [(24, 211, 209), (40, 160, 176), (32, 181, 190)])
    func joinedStepMatchesTheUnjoinedPlanBitForBit(_ shape: (Int, Int, Int)) throws {
        let (channels, height, width) = shape
        let x = Tensor(shape: [1, 8, height, width], scalars: Self.values(8 * height * width, seed: 5))
        for (expansion, depthwise) in [("Clip", "Clip"), ("SiLU", "SiLU"), ("Relu", ""), ("", "Sigmoid")] {
            let g = Self.graph(
                channels: channels, height: height, width: width, expansion: expansion, depthwise: depthwise)
            let (reference, unjoinedSteps) = try run(g, x, threads: 1, join: false)
            #expect(!unjoinedSteps.contains("ExpandDepthwiseConv"))
            for threads in [1, 2] {
                let (joined, steps) = try run(g, x, threads: threads, join: true)
                #expect(steps == ["ExpandDepthwiseConv"], "\(shape) \(expansion)/\(depthwise): \(steps)")
                #expect(joined.shape == reference.shape)
                #expect(
                    joined.isBitwiseEqual(to: reference),
                    "\(shape) \(expansion)/\(depthwise), \(threads) thread(s)")
            }
        }
    }

    /// The expanded map is also a graph output, or too small to be worth it: no joining.
    @Test func staysUnjoinedWhenTheMapIsNeededOrSmall() throws {
        let x = Tensor(shape: [1, 8, 211, 209], scalars: Self.values(8 * 211 * 209, seed: 6))
        let shared = Self.graph(
            channels: 24, height: 211, width: 209, expansion: "Clip", depthwise: "Clip", alsoOutput: true)
        #expect(try !run(shared, x, threads: 1, join: true).1.contains("ExpandDepthwiseConv"))
        let small = Tensor(shape: [1, 8, 56, 56], scalars: Self.values(8 * 56 * 56, seed: 7))
        let g = Self.graph(channels: 144, height: 56, width: 56, expansion: "Clip", depthwise: "Clip")
        #expect(try !run(g, small, threads: 1, join: true).1.contains("ExpandDepthwiseConv"))
    }
}
