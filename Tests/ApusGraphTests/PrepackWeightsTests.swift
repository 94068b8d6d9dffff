import ApusOps
import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// ``PrepackWeights``: convolution weights packed at convert time, stored in the artifact as a
/// fifth `FusedConv` input and read in place by the plans. A prepacked artifact must compute what
/// the plain graph computes, bit for bit, and a packed input the plan cannot use must either be
/// ignored (another panel format) or refused with a typed error (wrong size or type).
@Suite(.enabled(if: PackedGemm.isAvailable, "prepacked weights are read by the packed kernels"))
struct PrepackWeightsTests {
    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed) * 0.37)) * 0.5 }
    }

    /// x [batch, 8, 20, 20] → 3 × 3 Conv + Relu (Winograd) → 3 × 3 stride-2 Conv (taps) → 1 × 1
    /// Conv + Add of its input (packed GEMM with a residual) → 3 × 3 depthwise Conv (nothing to
    /// pack) → y.
    static var graph: Graph {
        Graph(
            inputs: [
                ValueInfo(
                    name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(8), .fixed(20), .fixed(20)])
            ],
            outputs: [ValueInfo(name: "y", dtype: nil, dimensions: nil)],
            nodes: [
                Node(
                    name: "winograd", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["c1"],
                    attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
                Node(name: "relu", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
                Node(
                    name: "taps", opType: "Conv", inputs: ["r1", "w2"], outputs: ["c2"],
                    attributes: [
                        "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                    ]),
                Node(name: "pointwise", opType: "Conv", inputs: ["c2", "w3", "b3"], outputs: ["c3"]),
                Node(name: "add", opType: "Add", inputs: ["c3", "c2"], outputs: ["s3"]),
                Node(
                    name: "depthwise", opType: "Conv", inputs: ["s3", "w4"], outputs: ["y"],
                    attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "group": .int(24)]),
            ],
            initializers: [
                "w1": Tensor(shape: [16, 8, 3, 3], scalars: values(16 * 8 * 9, seed: 1)),
                "b1": Tensor(shape: [16], scalars: values(16, seed: 2)),
                "w2": Tensor(shape: [24, 16, 3, 3], scalars: values(24 * 16 * 9, seed: 3)),
                "w3": Tensor(shape: [24, 24, 1, 1], scalars: values(24 * 24, seed: 4)),
                "b3": Tensor(shape: [24], scalars: values(24, seed: 5)),
                "w4": Tensor(shape: [24, 1, 3, 3], scalars: values(24 * 9, seed: 6)),
            ])
    }

    static func input(batch: Int) -> Tensor {
        Tensor(shape: [batch, 8, 20, 20], scalars: values(batch * 8 * 400, seed: 7))
    }

    /// Writes `graph` as an artifact and reads it back (weights in the file's mapping).
    static func roundTrip(_ graph: Graph) throws -> Graph {
        let url = FileManager.default.temporaryDirectory.appending(path: "prepack-\(UUID().uuidString).apus")
        defer { try? FileManager.default.removeItem(at: url) }
        try ArtifactWriter.write(ArtifactContents(graph: graph), to: url)
        return try ArtifactReader.read(contentsOf: url).graph
    }

    static func run(_ graph: Graph, batch: Int, threads: Int) throws -> (y: Tensor, prepacked: Int) {
        let runner = try GraphRunner(graph: graph, options: .init(plan: .init(threadCount: threads)))
        let x = input(batch: batch)
        let plan = try runner.plan(for: [x])
        return (try #require(try runner.run(["x": x])["y"]), plan.prepackedConvolutionCount)
    }

    static func prepacked() throws -> Graph {
        let (graph, report) = try PrepackWeights.apply(try Optimizer.optimize(Self.graph))
        #expect(report.skipped == nil)
        #expect(report.convolutions == 3)
        return graph
    }

    /// The Winograd layer's geometry at batch 1.
    static let winogradGeometry = Conv2DGeometry(
        batch: 1, inputChannels: 8, inputHeight: 20, inputWidth: 20, outputChannels: 16, kernelHeight: 3,
        kernelWidth: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)

    /// Three of the four convolutions get packed weights (the depthwise one reads its own); the
    /// artifact computes the plain graph's output bit for bit, at batch 1 and 2, 1 and 2 threads,
    /// with every packed input read in place.
    @Test func prepackedArtifactMatchesThePlainGraphBitForBit() throws {
        let graph = try Self.prepacked()
        let packedNodes = graph.nodes.filter { $0.inputs.count == 5 }
        #expect(packedNodes.map(\.name).sorted() == ["pointwise", "taps", "winograd"])
        #expect(
            Set(packedNodes.compactMap { try? $0.string("packed_layout") })
                == [
                    "winograd/\(PrepackedWeights.formatTag)", "taps/\(PrepackedWeights.formatTag)",
                    "gemm/\(PrepackedWeights.formatTag)",
                ])
        let stored = try Self.roundTrip(graph)
        for batch in [1, 2] {
            for threads in [1, 2] {
                let plain = try Self.run(Self.graph, batch: batch, threads: threads)
                let packed = try Self.run(stored, batch: batch, threads: threads)
                #expect(plain.prepacked == 0)
                // Without AVX-512 the 1 × 1 layer (24 input channels: reductions up to 32) takes
                // the AVX2 packed kernel; the taps layer reads its plain weights, and the
                // Winograd layer packs them for OpenBLAS's kernel when that is available.
                let expected =
                    PackedGemm.hasAVX512 ? 3 : 1 + (Conv2DPlan.winogradRunsOnBLAS(Self.winogradGeometry) ? 0 : 1)
                #expect(packed.prepacked == expected, "batch \(batch), \(threads) threads")
                #expect(packed.y.shape == plain.y.shape)
                #expect(try packed.y.scalars(as: Float.self) == plain.y.scalars(as: Float.self))
            }
        }
    }

    /// Packed for CPUs with AVX2 and no AVX-512: the Winograd layer and the strided one (im2col
    /// there) in OpenBLAS's layout, the short 1 × 1 reduction in the AVX2 kernel's panels. The
    /// artifact computes the plain graph's output bit for bit on any CPU; on such a CPU with
    /// OpenBLAS's kernel all three are read in place, elsewhere only what fits its plans.
    @Test func avx2ArtifactMatchesThePlainGraphBitForBit() throws {
        let (graph, report) = try PrepackWeights.apply(try Optimizer.optimize(Self.graph), target: .avx2)
        #expect(report.convolutions == 3)
        #expect(report.formats == ["o4k384", "p8k128"])
        let layouts = Dictionary(
            uniqueKeysWithValues: graph.nodes.filter { $0.inputs.count == 5 }.map {
                ($0.name, (try? $0.string("packed_layout")) ?? nil)
            })
        #expect(layouts == ["winograd": "winograd/o4k384", "taps": "gemm/o4k384", "pointwise": "gemm/p8k128"])
        let stored = try Self.roundTrip(graph)
        let readsAll = !PackedGemm.hasAVX512 && BLASPackedMatrix.isAvailable
        for batch in [1, 2] {
            for threads in [1, 2] {
                let plain = try Self.run(Self.graph, batch: batch, threads: threads)
                let packed = try Self.run(stored, batch: batch, threads: threads)
                #expect(packed.prepacked == (readsAll ? 3 : 1), "batch \(batch), \(threads) threads")
                #expect(try packed.y.scalars(as: Float.self) == plain.y.scalars(as: Float.self))
            }
        }
        // One float short in OpenBLAS's layout is refused, naming the node.
        var short = graph
        let index = try #require(graph.nodes.firstIndex { $0.name == "taps" })
        let name = graph.nodes[index].inputs[4]
        let count = try #require(graph.initializers[name]).elementCount
        short.initializers[name] = Tensor(shape: [count - 1], scalars: [Float](repeating: 0, count: count - 1))
        #expect {
            _ = try Self.run(short, batch: 1, threads: 1)
        } throws: { error in
            guard let error = error as? GraphError, case .node("taps", _, _) = error else { return false }
            return error.description.contains("gemm/o4k384")
        }
    }

    /// Packing again for another target replaces the stored weights: the result is what packing
    /// the plain graph for that target gives, tensor for tensor.
    @Test func packingAgainReplacesStoredWeights() throws {
        let plain = try Optimizer.optimize(Self.graph)
        let forAVX2 = try PrepackWeights.apply(plain, target: .avx2).graph
        let again = try PrepackWeights.apply(forAVX2, target: .avx512).graph
        let direct = try PrepackWeights.apply(plain, target: .avx512).graph
        #expect(again.nodes.map(\.inputs) == direct.nodes.map(\.inputs))
        #expect(
            again.nodes.map { try? $0.string("packed_layout") } == direct.nodes.map { try? $0.string("packed_layout") })
        #expect(Set(again.initializers.keys) == Set(direct.initializers.keys))
        for (name, tensor) in direct.initializers {
            let other = try #require(again.initializers[name])
            #expect(try other.scalars(as: Float.self) == tensor.scalars(as: Float.self), "\(name)")
        }
        #expect(PrepackWeights.removingPackedWeights(forAVX2).initializers.count == plain.initializers.count)
    }

    /// Packed weights of another panel format (a build with other kernel constants wrote them)
    /// are not read: the plan packs the plain weights, and the output is unchanged.
    @Test func anotherPanelFormatIsPackedAtLoad() throws {
        var graph = try Self.prepacked()
        for index in graph.nodes.indices where graph.nodes[index].inputs.count == 5 {
            graph.nodes[index].attributes["packed_layout"] = .string("taps/p16k64")
        }
        let result = try Self.run(try Self.roundTrip(graph), batch: 1, threads: 1)
        #expect(result.prepacked == 0)
        #expect(
            try result.y.scalars(as: Float.self) == Self.run(Self.graph, batch: 1, threads: 1).y.scalars(as: Float.self)
        )
    }

    /// A packed input one float short, of another type, or computed at run time is refused with an
    /// error naming the node; never read past its end.
    @Test func unusablePackedInputsAreTypedErrors() throws {
        let graph = try Self.prepacked()
        let index = try #require(graph.nodes.firstIndex { $0.name == "taps" })
        let name = graph.nodes[index].inputs[4]
        let count = try #require(graph.initializers[name]).elementCount
        var short = graph
        short.initializers[name] = Tensor(shape: [count - 1], scalars: [Float](repeating: 0, count: count - 1))
        var integers = graph
        integers.initializers[name] = Tensor(shape: [count], scalars: [Int64](repeating: 0, count: count))
        var computed = graph
        computed.nodes[index].inputs[4] = "x"
        for (broken, expected) in [(short, "prepacked weights"), (integers, "input 4"), (computed, "constant")] {
            do {
                _ = try Self.run(broken, batch: 1, threads: 1)
                Issue.record("a broken packed input was accepted (\(expected))")
            } catch let error as GraphError {
                guard case .node(let node, _, _) = error else {
                    Issue.record("unexpected error \(error)")
                    continue
                }
                #expect(node == "taps")
                #expect(error.description.contains(expected), "\(error)")
            }
        }
    }

    /// A graph whose inputs have symbolic sizes past the batch axis is left alone: which layout a
    /// layer's plan wants depends on its spatial size.
    @Test func symbolicSpatialSizesAreNotPrepacked() throws {
        var graph = try Optimizer.optimize(Self.graph)
        graph.inputs[0].dimensions = [.fixed(1), .fixed(8), .symbolic("height"), .fixed(20)]
        let (result, report) = try PrepackWeights.apply(graph)
        #expect(report.convolutions == 0)
        #expect(report.skipped?.contains("height") == true)
        #expect(result.initializers.count == graph.initializers.count)
    }

    /// A prepacked expansion still joins the stride-2 depthwise layer after it, and the joined
    /// step reads the packed weights.
    @Test(.enabled(if: PackedGemm.hasAVX512, "the joined step needs the AVX-512 depthwise kernel"))
    func prepackedExpansionStillJoins() throws {
        let plain = ExpandDepthwiseTests.graph(
            channels: 24, height: 211, width: 209, expansion: "Clip", depthwise: "Clip")
        let (graph, report) = try PrepackWeights.apply(plain)
        #expect(report.convolutions == 1)
        let x = Tensor(shape: [1, 8, 211, 209], scalars: Self.values(8 * 211 * 209, seed: 5))
        let stored = try Self.roundTrip(graph)
        let runner = try GraphRunner(graph: stored, options: .init(plan: .init(threadCount: 2)))
        let plan = try runner.plan(for: [x])
        #expect(plan.stepSummaries.map(\.opType) == ["ExpandDepthwiseConv"])
        #expect(plan.prepackedConvolutionCount == 1)
        let reference = try GraphRunner(graph: plain, options: .init(plan: .init(threadCount: 2)))
        let y = try #require(try runner.run(["x": x])["y"])
        let expected = try #require(try reference.run(["x": x])["y"])
        #expect(try y.scalars(as: Float.self) == expected.scalars(as: Float.self))
    }
}
