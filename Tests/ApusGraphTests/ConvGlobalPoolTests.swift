import ApusOps
import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// The planner joins a depthwise convolution on the AVX-512 kernel with the `GlobalAveragePool`
/// of its output right after it (``ConvGlobalPool``): both outputs must be the unjoined plan's,
/// bit for bit, at 1 and 2 threads, and the map keeps its other readers.
@Suite(.enabled(if: PackedGemm.hasAVX512, "the joined step needs the AVX-512 depthwise kernel"))
struct ConvGlobalPoolTests {
    /// x [batch, `channels`, size, size] → 3 × 3 depthwise FusedConv (bias, SiLU) = d →
    /// GlobalAveragePool = p; y = Mul(d, p) (the map's second reader); outputs y and p.
    static func graph(channels: Int, size: Int) -> Graph {
        Graph(
            inputs: [
                ValueInfo(
                    name: "x", dtype: .float32,
                    dimensions: [.symbolic("batch"), .fixed(channels), .fixed(size), .fixed(size)])
            ],
            outputs: [
                ValueInfo(name: "y", dtype: nil, dimensions: nil), ValueInfo(name: "p", dtype: nil, dimensions: nil),
            ],
            nodes: [
                Node(
                    name: "depthwise", opType: "FusedConv", domain: Node.apusDomain, inputs: ["x", "w", "b"],
                    outputs: ["d"],
                    attributes: [
                        "kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "group": .int(channels),
                        "activation": .string("SiLU"),
                    ]),
                Node(name: "pool", opType: "GlobalAveragePool", inputs: ["d"], outputs: ["p"]),
                Node(name: "scale", opType: "Mul", inputs: ["d", "p"], outputs: ["y"]),
            ],
            initializers: [
                "w": Tensor(shape: [channels, 1, 3, 3], scalars: ExpandDepthwiseTests.values(channels * 9, seed: 1)),
                "b": Tensor(shape: [channels], scalars: ExpandDepthwiseTests.values(channels, seed: 2)),
            ])
    }

    static func run(channels: Int, size: Int, batch: Int, threads: Int, join: Bool) throws -> (
        y: [Float], p: [Float], steps: [String]
    ) {
        let runner = try GraphRunner(
            graph: graph(channels: channels, size: size),
            options: .init(plan: .init(threadCount: threads, joinsGlobalPools: join), splitBatches: false))
        let x = Tensor(
            shape: [batch, channels, size, size],
            scalars: ExpandDepthwiseTests.values(batch * channels * size * size, seed: 3))
        let plan = try runner.plan(for: [x])
        let outputs = try runner.run(["x": x])
        let y = try #require(outputs["y"])
        let p = try #require(outputs["p"])
        return (try y.scalars(as: Float.self), try p.scalars(as: Float.self), plan.stepSummaries.map(\.opType))
    }

    @Test(arguments: [(24, 56), (40, 14), (19, 7)])
    func joinedStepGivesTheUnjoinedBits(channels: Int, size: Int) throws {
        for batch in [1, 2] {
            let separate = try Self.run(channels: channels, size: size, batch: batch, threads: 1, join: false)
            #expect(separate.steps == ["FusedConv", "GlobalAveragePool", "Mul"])
            for threads in [1, 2] {
                let joined = try Self.run(channels: channels, size: size, batch: batch, threads: threads, join: true)
                #expect(joined.steps == ["ConvGlobalPool", "Mul"])
                #expect(joined.p == separate.p, "\(channels) × \(size)², batch \(batch), \(threads) threads")
                #expect(joined.y == separate.y, "\(channels) × \(size)², batch \(batch), \(threads) threads")
            }
        }
    }

    /// The shared plane mean against a Double sum of the same values.
    @Test func planeAverageMatchesADoubleSum() {
        for count in [0, 1, 3, 4, 15, 16, 17, 31, 32, 33, 49, 196, 3136] {
            let values = ExpandDepthwiseTests.values(count, seed: count)
            let mean = (values + [0]).withUnsafeBufferPointer { Pool2D.average($0.baseAddress!, count: count) }
            if count == 0 {
                #expect(mean.isNaN)
                continue
            }
            let exact = values.reduce(0.0) { $0 + Double($1) } / Double(count)
            #expect(abs(Double(mean) - exact) <= 1e-6 * max(1, abs(exact)) + 1e-7, "\(count) values")
        }
    }
}
