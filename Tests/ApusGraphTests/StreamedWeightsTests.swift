import ApusTensor
import Foundation
import Testing

@testable import ApusGraph
@testable import ApusOps

/// The planner copies the packed weights of convolutions on a 1 × 1 map (squeeze-and-excitation
/// products) side by side onto huge pages (``Planner/placeStreamedWeights(_:)``): the plans read
/// the copy, which holds the same values, and the results keep every bit.
@Suite(.enabled(if: PackedGemm.isAvailable, "packed weights need the packed kernels"))
struct StreamedWeightsTests {
    /// x [`batch`, `channels`, 7, 7] → GlobalAveragePool → 1 × 1 Conv (`squeezed`, bias) + Relu →
    /// 1 × 1 Conv (`channels`, bias) + Sigmoid → y.
    static func graph(batch: Int, channels: Int, squeezed: Int) -> Graph {
        Graph(
            inputs: [
                ValueInfo(
                    name: "x", dtype: .float32, dimensions: [.fixed(batch), .fixed(channels), .fixed(7), .fixed(7)])
            ],
            outputs: [ValueInfo(name: "y", dtype: nil, dimensions: nil)],
            nodes: [
                Node(name: "pool", opType: "GlobalAveragePool", inputs: ["x"], outputs: ["p"]),
                Node(name: "squeeze", opType: "Conv", inputs: ["p", "w1", "b1"], outputs: ["s"]),
                Node(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["r"]),
                Node(name: "excite", opType: "Conv", inputs: ["r", "w2", "b2"], outputs: ["e"]),
                Node(name: "sigmoid", opType: "Sigmoid", inputs: ["e"], outputs: ["y"]),
            ],
            initializers: [
                "w1": Tensor(
                    shape: [squeezed, channels, 1, 1],
                    scalars: ScaledInputConvTests.values(squeezed * channels, seed: 1).map { $0 * 0.05 }),
                "b1": Tensor(shape: [squeezed], scalars: ScaledInputConvTests.values(squeezed, seed: 2)),
                "w2": Tensor(
                    shape: [channels, squeezed, 1, 1],
                    scalars: ScaledInputConvTests.values(channels * squeezed, seed: 3).map { $0 * 0.05 }),
                "b2": Tensor(shape: [channels], scalars: ScaledInputConvTests.values(channels, seed: 4)),
            ])
    }

    static func run(batch: Int, channels: Int, squeezed: Int, threads: Int, copies: Bool) throws -> (
        x: [Float], y: [Float], plan: ExecutionPlan
    ) {
        let runner = try GraphRunner(
            graph: graph(batch: batch, channels: channels, squeezed: squeezed),
            options: .init(plan: .init(threadCount: threads, copiesStreamedWeights: copies)))
        let scalars = ScaledInputConvTests.values(batch * channels * 49, seed: 5)
        let x = Tensor(shape: [batch, channels, 7, 7], scalars: scalars)
        let plan = try runner.plan(for: [x])
        let y = try #require(try runner.run(["x": x])["y"])
        return (scalars, try y.scalars(as: Float.self), plan)
    }

    /// The packed weights of the two convolutions.
    static func packed(_ plan: ExecutionPlan) throws -> [PackedMatrix] {
        try ["squeeze", "excite"].map { name in
            let step = try #require(plan.steps.first { $0.nodeName.hasPrefix(name) })
            let conv = try #require(step.op as? Conv)
            return try #require(conv.plan?.packedWeights)
        }
    }

    /// The graph in Double: pool, squeeze, Relu, excite, Sigmoid.
    static func reference(x: [Float], batch: Int, channels: Int, squeezed: Int) -> [Double] {
        let w1 = ScaledInputConvTests.values(squeezed * channels, seed: 1).map { Double($0 * 0.05) }
        let b1 = ScaledInputConvTests.values(squeezed, seed: 2).map(Double.init)
        let w2 = ScaledInputConvTests.values(channels * squeezed, seed: 3).map { Double($0 * 0.05) }
        let b2 = ScaledInputConvTests.values(channels, seed: 4).map(Double.init)
        var y: [Double] = []
        for n in 0..<batch {
            let pooled = (0..<channels).map { c in
                (0..<49).reduce(0.0) { $0 + Double(x[(n * channels + c) * 49 + $1]) } / 49
            }
            let r = (0..<squeezed).map { s in
                max(0, (0..<channels).reduce(b1[s]) { $0 + w1[s * channels + $1] * pooled[$1] })
            }
            for c in 0..<channels {
                let e = (0..<squeezed).reduce(b2[c]) { $0 + w2[c * squeezed + $1] * r[$1] }
                y.append(1 / (1 + exp(-e)))
            }
        }
        return y
    }

    @Test func weightsOnOneCopyKeepTheBits() throws {
        // 1024 × 320 floats each way (1.3 MB apiece): copied; batch 1 and 3.
        for batch in [1, 3] {
            let off = try Self.run(batch: batch, channels: 1024, squeezed: 320, threads: 1, copies: false)
            let reference = Self.reference(x: off.x, batch: batch, channels: 1024, squeezed: 320)
            #expect(zip(off.y, reference).allSatisfy { abs(Double($0) - $1) <= 1e-5 }, "batch \(batch)")
            let original = try Self.packed(off.plan)
            for threads in [1, 2] {
                let on = try Self.run(batch: batch, channels: 1024, squeezed: 320, threads: threads, copies: true)
                #expect(on.y == off.y, "batch \(batch), \(threads) threads")
                let moved = try Self.packed(on.plan)
                for (a, b) in zip(original, moved) {
                    #expect(a.packedValues.elementsEqual(b.packedValues) { $0.bitPattern == $1.bitPattern })
                    #expect(a.packedValues.baseAddress != b.packedValues.baseAddress)
                }
                // Side by side in one allocation, each at a 64-byte boundary.
                let first = try #require(moved[0].packedValues.baseAddress)
                let second = try #require(moved[1].packedValues.baseAddress)
                #expect(second == first + (moved[0].packedValues.count + 15) / 16 * 16)
                #expect(Int(bitPattern: first) % 64 == 0)
            }
        }
    }

    @Test func smallWeightsStayWhereTheyAre() throws {
        // 256 × 64 floats each way (64 KB apiece, 128 KB together) is under the 1 MiB worth a copy;
        // 1024 × 320 is over it.
        for (channels, squeezed, moves) in [(256, 64, false), (1024, 320, true)] {
            let plan = try Self.run(batch: 1, channels: channels, squeezed: squeezed, threads: 1, copies: false).plan
            let before = try Self.packed(plan)
            let steps = Planner.placeStreamedWeights(plan.steps)
            let after = try ["squeeze", "excite"].map { name in
                let step = try #require(steps.first { $0.nodeName.hasPrefix(name) })
                return try #require((step.op as? Conv)?.plan?.packedWeights)
            }
            for (a, b) in zip(before, after) { #expect((a !== b) == moves, "\(channels) × \(squeezed)") }
        }
    }
}
