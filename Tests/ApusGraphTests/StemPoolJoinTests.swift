import ApusOps
import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// The planner joins a stem on the direct kernel with the max pooling that alone reads it
/// (``DirectConvMaxPoolStep``); the plan must give the unjoined plan's bits.
@Suite(.enabled(if: PackedGemm.hasAVX512, "the direct kernel needs AVX-512"))
struct StemPoolJoinTests {
    /// x [batch, 3, 45, 45] → 7 × 7 stride-2 Conv (20 channels) + Relu → 3 × 3 stride-2 MaxPool → y;
    /// with `alsoOutput` the convolution's output is a graph output too.
    static func graph(alsoOutput: Bool = false) -> Graph {
        var outputs = [ValueInfo(name: "y", dtype: nil, dimensions: nil)]
        if alsoOutput { outputs.append(ValueInfo(name: "r", dtype: nil, dimensions: nil)) }
        return Graph(
            inputs: [
                ValueInfo(
                    name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(3), .fixed(45), .fixed(45)])
            ],
            outputs: outputs,
            nodes: [
                Node(
                    name: "stem", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                    attributes: [
                        "kernel_shape": .ints([7, 7]), "strides": .ints([2, 2]), "pads": .ints([3, 3, 3, 3]),
                    ]
                ),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                Node(
                    name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["y"],
                    attributes: [
                        "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                    ]),
            ],
            initializers: [
                "w": Tensor(shape: [20, 3, 7, 7], scalars: ScaledInputConvTests.values(20 * 3 * 49, seed: 1)),
                "b": Tensor(shape: [20], scalars: ScaledInputConvTests.values(20, seed: 2)),
            ])
    }

    static func run(_ graph: Graph, batch: Int, threads: Int, join: Bool) throws -> (y: [Float], steps: [String]) {
        let runner = try GraphRunner(
            graph: graph, options: .init(plan: .init(threadCount: threads, joinsStemPools: join), splitBatches: false))
        let x = Tensor(
            shape: [batch, 3, 45, 45], scalars: ScaledInputConvTests.values(batch * 3 * 45 * 45, seed: 3))
        let plan = try runner.plan(for: [x])
        let y = try #require(try runner.run(["x": x])["y"])
        return (try y.scalars(as: Float.self), plan.stepSummaries.map(\.opType))
    }

    @Test func joinedPlanGivesTheUnjoinedBits() throws {
        for batch in [1, 2] {
            let separate = try Self.run(Self.graph(), batch: batch, threads: 1, join: false)
            #expect(separate.steps == ["FusedConv", "MaxPool"])
            for threads in [1, 2] {
                let joined = try Self.run(Self.graph(), batch: batch, threads: threads, join: true)
                #expect(joined.steps == ["DirectConvMaxPool"])
                #expect(joined.y == separate.y, "batch \(batch), \(threads) threads")
            }
        }
    }

    @Test func staysUnjoinedWhenTheMapIsAlsoAnOutput() throws {
        let result = try Self.run(Self.graph(alsoOutput: true), batch: 1, threads: 1, join: true)
        #expect(result.steps == ["FusedConv", "MaxPool"])
    }
}
