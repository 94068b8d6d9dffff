import ApusOps
import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// The planner gives the last convolution on the packed kernel before a classifier the job of
/// fetching the classifier's weights (``Planner/assignReadAheads(_:)``), and the classifier reads
/// a copy of them on huge pages (``Gemm/streamedB``); neither changes a bit of the result.
@Suite(.enabled(if: PackedGemm.hasAVX512, "the read-ahead is in the AVX-512 kernel"))
struct ReadAheadPlanTests {
    /// x [1, 64, 7, 7] → 1 × 1 Conv (256) + Relu → GlobalAveragePool → Flatten → Gemm with B
    /// [`classes`, 256] (transB) → y.
    static func graph(classes: Int) -> Graph {
        Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(64), .fixed(7), .fixed(7)])],
            outputs: [ValueInfo(name: "y", dtype: nil, dimensions: nil)],
            nodes: [
                Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"]),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                Node(name: "pool", opType: "GlobalAveragePool", inputs: ["r"], outputs: ["p"]),
                Node(name: "flatten", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
                Node(
                    name: "classifier", opType: "Gemm", inputs: ["f", "fc", "fb"], outputs: ["y"],
                    attributes: ["transB": .int(1)]),
            ],
            initializers: [
                "w": Tensor(shape: [256, 64, 1, 1], scalars: ScaledInputConvTests.values(256 * 64, seed: 1)),
                "b": Tensor(shape: [256], scalars: ScaledInputConvTests.values(256, seed: 2)),
                "fc": Tensor(shape: [classes, 256], scalars: ScaledInputConvTests.values(classes * 256, seed: 3)),
                "fb": Tensor(shape: [classes], scalars: ScaledInputConvTests.values(classes, seed: 4)),
            ])
    }

    static func run(classes: Int, threads: Int, readsAhead: Bool) throws -> (y: [Float], plan: ExecutionPlan) {
        let graph = graph(classes: classes)
        let runner = try GraphRunner(
            graph: graph, options: .init(plan: .init(threadCount: threads, readsAhead: readsAhead)))
        let x = Tensor(shape: [1, 64, 7, 7], scalars: ScaledInputConvTests.values(64 * 49, seed: 5))
        let plan = try runner.plan(for: [x])
        let y = try #require(try runner.run(["x": x])["y"])
        return (try y.scalars(as: Float.self), plan)
    }

    /// The step names whose ``Step/readAhead`` is set, and the bytes each fetches.
    static func readers(_ plan: ExecutionPlan) -> [String: Int] {
        var result: [String: Int] = [:]
        for step in plan.steps { if let region = step.readAhead { result[step.nodeName] = region.byteCount } }
        return result
    }

    @Test func theConvolutionFetchesTheClassifierWeights() throws {
        // 4200 × 256 floats, 4.3 MB: a copy on huge pages; 1100 × 256, 1.1 MB: read where loaded.
        for classes in [4200, 1100] {
            let off = try Self.run(classes: classes, threads: 1, readsAhead: false)
            #expect(Self.readers(off.plan).isEmpty)
            for threads in [1, 2] {
                let on = try Self.run(classes: classes, threads: threads, readsAhead: true)
                #expect(Self.readers(on.plan) == ["conv": classes * 256 * 4], "\(classes) classes")
                #expect(on.y == off.y, "\(classes) classes, \(threads) threads")
            }
            let step = try #require(off.plan.steps.first { $0.nodeName == "classifier" })
            let gemm = try #require(step.op as? Gemm)
            let streamed = try #require(gemm.streamedB)
            guard case .constant(let original) = step.inputs[1] else {
                Issue.record("the classifier's weights are not a constant input")
                continue
            }
            #expect(streamed.isBitwiseEqual(to: original))
            let copied = streamed.rawPointer != original.rawPointer
            #expect(copied == (classes * 256 * 4 >= TensorStorage.hugePageBytes))
        }
    }

    @Test func smallAndLargeClassifiersAreNotReadAhead() throws {
        // 512 × 256 floats (512 KB) is under the 1 MiB where reading ahead starts.
        let small = try Self.run(classes: 512, threads: 1, readsAhead: true)
        #expect(Self.readers(small.plan).isEmpty)
        let step = try #require(small.plan.steps.first { $0.nodeName == "classifier" })
        #expect((step.op as? Gemm)?.streamedB == nil)
        // 8400 × 256 floats (8.6 MB) with the convolution's weights pass the 8 MiB a host may
        // stream: still a copy on huge pages, but nothing fetches it ahead.
        let large = try Self.run(classes: 8400, threads: 1, readsAhead: true)
        #expect(Self.readers(large.plan).isEmpty)
        let largeStep = try #require(large.plan.steps.first { $0.nodeName == "classifier" })
        #expect((largeStep.op as? Gemm)?.streamedB != nil)
    }
}
