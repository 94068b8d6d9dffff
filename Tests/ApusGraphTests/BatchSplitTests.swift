import ApusOps
import ApusTensor
import Foundation
import Synchronization
import Testing

@testable import ApusGraph

/// A batch runs sample by sample on the batch-1 plan only when the graph computes every sample on
/// its own; these tests check both sides of that rule against results computed here by hand.
@Suite struct BatchSplitTests {
    static let batchAxis: [ApusGraph.Dimension] = [.symbolic("N"), .fixed(4)]

    static func graph(
        _ nodes: [Node], input: [ApusGraph.Dimension] = batchAxis, initializers: [String: Tensor] = [:], opset: Int = 17
    ) -> Graph {
        Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: input)],
            outputs: [ValueInfo(name: "y", dtype: nil, dimensions: nil)], nodes: nodes, initializers: initializers,
            opsetImports: ["": opset])
    }

    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed) * 0.37)) }
    }

    static func int64s(_ values: [Int]) -> Tensor { Tensor(shape: [values.count], scalars: values.map(Int64.init)) }

    /// Conv (2→3 channels, 3×3, pad 1) → Relu → Flatten → Gemm (→ 4) → Softmax over axis 1.
    static let convNet: Graph = {
        let weight = Tensor(shape: [3, 2, 3, 3], scalars: values(54, seed: 1))
        let bias = Tensor(shape: [3], scalars: values(3, seed: 2))
        let dense = Tensor(shape: [4, 108], scalars: values(432, seed: 3).map { $0 * 0.1 })
        let denseBias = Tensor(shape: [4], scalars: values(4, seed: 4))
        return graph(
            [
                Node(
                    name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                    attributes: ["pads": .ints([1, 1, 1, 1]), "kernel_shape": .ints([3, 3])]),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                Node(name: "flatten", opType: "Flatten", inputs: ["r"], outputs: ["f"]),
                Node(
                    name: "dense", opType: "Gemm", inputs: ["f", "d", "db"], outputs: ["g"],
                    attributes: ["transB": .int(1)]),
                Node(name: "softmax", opType: "Softmax", inputs: ["g"], outputs: ["y"], attributes: ["axis": .int(1)]),
            ], input: [.symbolic("N"), .fixed(2), .fixed(6), .fixed(6)],
            initializers: ["w": weight, "b": bias, "d": dense, "db": denseBias])
    }()

    /// `convNet` for one sample of 2×6×6, by the definitions.
    static func convNetReference(_ x: ArraySlice<Float>) -> [Float] {
        let x = Array(x)
        let w = values(54, seed: 1)
        let b = values(3, seed: 2)
        let d = values(432, seed: 3).map { $0 * 0.1 }
        let db = values(4, seed: 4)
        var features = [Float](repeating: 0, count: 108)
        for o in 0..<3 {
            for row in 0..<6 {
                for column in 0..<6 {
                    var sum = Double(b[o])
                    for c in 0..<2 {
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let (iy, ix) = (row + ky - 1, column + kx - 1)
                                guard (0..<6).contains(iy), (0..<6).contains(ix) else { continue }
                                sum += Double(x[c * 36 + iy * 6 + ix]) * Double(w[((o * 2 + c) * 3 + ky) * 3 + kx])
                            }
                        }
                    }
                    features[o * 36 + row * 6 + column] = Float(max(0, sum))
                }
            }
        }
        let logits = (0..<4).map { j in
            (0..<108).reduce(Double(db[j])) { $0 + Double(features[$1]) * Double(d[j * 108 + $1]) }
        }
        let top = logits.max()!
        let exps = logits.map { exp($0 - top) }
        let total = exps.reduce(0, +)
        return exps.map { Float($0 / total) }
    }

    /// Expects `rows` (four per sample) to be `convNet`'s outputs, by the definition, for the
    /// samples of `pixels` (72 per sample).
    static func expectConvNet(
        _ rows: [Float], of pixels: [Float], _ label: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(rows.count == pixels.count / 72 * 4, "\(label): \(rows.count) outputs", sourceLocation: sourceLocation)
        for sample in 0..<min(pixels.count / 72, rows.count / 4) {
            let expected = convNetReference(pixels[sample * 72..<(sample + 1) * 72])
            for j in 0..<4 {
                #expect(
                    abs(rows[sample * 4 + j] - expected[j]) <= 1e-5, "\(label): sample \(sample) class \(j)",
                    sourceLocation: sourceLocation)
            }
        }
    }

    @Test func splitsAPerSampleNetworkAndMatchesTheDefinition() throws {
        let batch = 5
        let x = Tensor(shape: [batch, 2, 6, 6], scalars: Self.values(batch * 72, seed: 9))
        let one = try GraphRunner(graph: Self.convNet, options: .init(plan: .init(threadCount: 1)))
        let two = try GraphRunner(graph: Self.convNet, options: .init(plan: .init(threadCount: 2)))
        let whole = try GraphRunner(
            graph: Self.convNet, options: .init(plan: .init(threadCount: 2), splitBatches: false))
        #expect(try two.batchSplitRefusal(for: ["x": x]) == nil)
        #expect(try whole.batchSplitRefusal(for: ["x": x]) != nil)
        let split = try #require(try two.run(["x": x])["y"])
        #expect(split.shape == [batch, 4])
        #expect(try one.run(["x": x])["y"]?.isBitwiseEqual(to: split) == true, "1 vs 2 threads")
        let pixels = try x.scalars(as: Float.self)
        let rows = try split.scalars(as: Float.self)
        let wholeRows = try #require(try whole.run(["x": x])["y"]).scalars(as: Float.self)
        Self.expectConvNet(rows, of: pixels, "split")
        Self.expectConvNet(wholeRows, of: pixels, "whole batch")
        for sample in 0..<batch {
            // The sample alone gives the same bits.
            let alone = Tensor(shape: [1, 2, 6, 6], scalars: Array(pixels[sample * 72..<(sample + 1) * 72]))
            let aloneRow = try #require(try two.run(["x": alone])["y"]).scalars(as: Float.self)
            #expect(aloneRow == Array(rows[sample * 4..<(sample + 1) * 4]), "sample \(sample) alone")
        }
    }

    /// With a batch-tail budget, the layers after the first point where every whole-batch value
    /// fits it run on the whole batch: here the dense layer and the softmax (80 bytes at batch 5;
    /// the flattened features, 2160 bytes, are the one value crossing the cut).
    @Test func runsTheEndOnTheWholeBatchUnderTheTailBudget() throws {
        let batch = 5
        let x = Tensor(shape: [batch, 2, 6, 6], scalars: Self.values(batch * 72, seed: 11))
        let one = try GraphRunner(
            graph: Self.convNet, options: .init(plan: .init(threadCount: 1), batchTailBytes: 1000))
        let two = try GraphRunner(
            graph: Self.convNet, options: .init(plan: .init(threadCount: 2), batchTailBytes: 1000))
        let plain = try GraphRunner(graph: Self.convNet, options: .init(plan: .init(threadCount: 2)))
        #expect(try two.batchTailCut(for: ["x": x]) == "dense")
        #expect(try plain.batchTailCut(for: ["x": x]) == nil, "off by default")
        let single = Tensor(shape: [1, 2, 6, 6], scalars: Self.values(72, seed: 11))
        #expect(try two.batchTailCut(for: ["x": single]) == nil, "a batch of one runs whole")
        // A budget under every value's size leaves no tail; one over all of them cuts after the first node.
        let tiny = try GraphRunner(graph: Self.convNet, options: .init(plan: .init(threadCount: 2), batchTailBytes: 8))
        #expect(try tiny.batchTailCut(for: ["x": x]) == nil)
        let large = try GraphRunner(
            graph: Self.convNet, options: .init(plan: .init(threadCount: 2), batchTailBytes: 1 << 20))
        #expect(try large.batchTailCut(for: ["x": x]) == large.graph.nodes[1].name)

        let pixels = try x.scalars(as: Float.self)
        var outputs: [String: Tensor] = [:]
        try two.run(["x": x], into: &outputs)
        let tailed = try #require(outputs["y"])
        #expect(tailed.shape == [batch, 4])
        Self.expectConvNet(try tailed.scalars(as: Float.self), of: pixels, "tail")
        Self.expectConvNet(try #require(try large.run(["x": x])["y"]).scalars(as: Float.self), of: pixels, "long tail")
        #expect(try one.run(["x": x])["y"]?.isBitwiseEqual(to: tailed) == true, "1 vs 2 threads")
        // A second run reuses the caller's output and the crossing tensor.
        try two.run(["x": x], into: &outputs)
        #expect(outputs["y"]?.rawPointer == tailed.rawPointer)
        Self.expectConvNet(try tailed.scalars(as: Float.self), of: pixels, "tail, second run")
    }

    @Test func reusesCallerOutputsAndSurvivesConcurrentCallers() throws {
        let runner = try GraphRunner(
            graph: Self.convNet, options: .init(plan: .init(threadCount: 2, maxConcurrentRuns: 1)))
        let batches = (0..<6).map { index in
            Tensor(shape: [3 + index % 2, 2, 6, 6], scalars: Self.values((3 + index % 2) * 72, seed: index))
        }
        var outputs: [String: Tensor] = [:]
        try runner.run(["x": batches[0]], into: &outputs)
        let first = try #require(outputs["y"])
        try runner.run(["x": batches[2]], into: &outputs)
        #expect(outputs["y"]?.rawPointer == first.rawPointer, "same shape: written in place")
        // Six callers at once on a pool of one arena: none waits forever for a second arena.
        let results = Mutex<[Int: [Float]]>([:])
        DispatchQueue.concurrentPerform(iterations: 12) { index in
            let x = batches[index % batches.count]
            let y = try? runner.run(["x": x])["y"]?.scalars(as: Float.self)
            results.withLock { $0[index] = y }
        }
        for index in 0..<12 {
            let x = try batches[index % batches.count].scalars(as: Float.self)
            let rows = try #require(results.withLock { $0[index] })
            Self.expectConvNet(rows, of: x, "caller \(index)")
        }
    }

    /// A graph whose samples interact, the reason the rule must give, and the result by definition
    /// (row-major, batch 4 of 4 columns; `x[i][j]` is `xs[i * 4 + j]`).
    struct MixingCase: CustomTestStringConvertible, Sendable {
        let name: String
        let graph: Graph
        let reason: String
        let shape: Shape
        let reference: @Sendable ([Float]) -> [Float]
        var testDescription: String { name }
    }

    static func softmaxOverBatch(_ xs: [Float]) -> [Float] {
        var y = xs
        for j in 0..<4 {
            let column = (0..<4).map { Double(xs[$0 * 4 + j]) }
            let top = column.max()!
            let total = column.map { exp($0 - top) }.reduce(0, +)
            for i in 0..<4 { y[i * 4 + j] = Float(exp(column[i] - top) / total) }
        }
        return y
    }

    static func transposed(_ xs: [Float]) -> [Float] {
        (0..<16).map { xs[($0 % 4) * 4 + $0 / 4] }
    }

    static func reversed(_ xs: [Float]) -> [Float] {
        (0..<16).map { xs[(3 - $0 / 4) * 4 + $0 % 4] }
    }

    static func logSoftmaxOverBatch(_ xs: [Float]) -> [Float] {
        softmaxOverBatch(xs).map { Float(log(Double($0))) }
    }

    static func firstRowRepeated(_ xs: [Float]) -> [Float] {
        (0..<16).map { xs[$0 % 4] }
    }

    static func dividedByBatch(_ xs: [Float]) -> [Float] {
        xs.map { $0 / 4 }
    }

    static func plusColumnSums(_ xs: [Float]) -> [Float] {
        (0..<16).map { index in xs[index] + (0..<4).map { xs[(index % 4) * 4 + $0] }.reduce(0, +) }
    }

    static func concatenated(_ xs: [Float]) -> [Float] {
        xs + xs
    }

    static let mixingCases: [MixingCase] = [
        MixingCase(
            name: "Softmax over axis 0",
            graph: graph([
                Node(name: "s", opType: "Softmax", inputs: ["x"], outputs: ["y"], attributes: ["axis": .int(0)])
            ]),
            reason: "normalizes over the batch axis", shape: [4, 4],
            reference: softmaxOverBatch),
        MixingCase(
            name: "Transpose moving the batch",
            graph: graph([
                Node(
                    name: "t", opType: "Transpose", inputs: ["x"], outputs: ["y"], attributes: ["perm": .ints([1, 0])])
            ]),
            reason: "at batch 1", shape: [4, 4],
            reference: transposed),
        MixingCase(
            name: "Slice reversing the batch",
            graph: graph(
                [Node(name: "r", opType: "Slice", inputs: ["x", "starts", "ends", "axes", "steps"], outputs: ["y"])],
                initializers: [
                    "starts": int64s([-1]), "ends": int64s([Int(Int64.min)]), "axes": int64s([0]),
                    "steps": int64s([-1]),
                ]),
            reason: "slices the batch axis", shape: [4, 4],
            reference: reversed),
        MixingCase(
            name: "LogSoftmax over axis -2",
            graph: graph([
                Node(name: "s", opType: "LogSoftmax", inputs: ["x"], outputs: ["y"], attributes: ["axis": .int(-2)])
            ]),
            reason: "normalizes over the batch axis", shape: [4, 4], reference: logSoftmaxOverBatch),
        MixingCase(
            name: "Gather along the batch",
            graph: graph(
                [
                    Node(
                        name: "g", opType: "Gather", inputs: ["x", "order"], outputs: ["y"],
                        attributes: ["axis": .int(0)])
                ],
                initializers: ["order": int64s([0, 0, 0, 0])]),
            reason: "at batch 1", shape: [4, 4], reference: firstRowRepeated),
        MixingCase(
            name: "division by the batch size",
            graph: graph(
                [
                    Node(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
                    Node(
                        name: "n", opType: "Gather", inputs: ["s", "zero"], outputs: ["n"],
                        attributes: ["axis": .int(0)]),
                    Node(name: "cast", opType: "Cast", inputs: ["n"], outputs: ["nf"], attributes: ["to": .int(1)]),
                    Node(name: "div", opType: "Div", inputs: ["x", "nf"], outputs: ["y"]),
                ], initializers: ["zero": Tensor(shape: [], scalars: [Int64(0)])]),
            reason: "depends on the batch size", shape: [4, 4],
            reference: dividedByBatch),
        MixingCase(
            name: "a per-sample sum broadcast along columns",
            graph: graph(
                [
                    Node(
                        name: "sum", opType: "ReduceSum", inputs: ["x", "one"], outputs: ["s"],
                        attributes: ["keepdims": .int(0)]),
                    Node(name: "add", opType: "Add", inputs: ["x", "s"], outputs: ["y"]),
                ], initializers: ["one": int64s([1])]),
            reason: "broadcasts its batch axis", shape: [4, 4],
            reference: plusColumnSums),
        MixingCase(
            name: "Concat along the batch",
            graph: graph([
                Node(name: "c", opType: "Concat", inputs: ["x", "x"], outputs: ["y"], attributes: ["axis": .int(0)])
            ]),
            reason: "at batch 1", shape: [8, 4], reference: concatenated),
    ]

    @Test(arguments: mixingCases)
    func runsGraphsThatMixSamplesWhole(_ mixing: MixingCase) throws {
        let runner = try GraphRunner(graph: mixing.graph, options: .init(plan: .init(threadCount: 2)))
        let xs = Self.values(16, seed: 5).map { $0 * 3 }
        let x = Tensor(shape: [4, 4], scalars: xs)
        let refusal = try runner.batchSplitRefusal(for: ["x": x])
        #expect(refusal?.contains(mixing.reason) == true, "refusal: \(refusal ?? "none")")
        let y = try #require(try runner.run(["x": x])["y"])
        #expect(y.shape == mixing.shape)
        let expected = mixing.reference(xs)
        for (actual, wanted) in zip(try y.scalars(as: Float.self), expected) {
            #expect(abs(actual - wanted) <= 1e-5 * max(1, abs(wanted)), "\(mixing.name)")
        }
    }

    @Test func keepsShapeArithmeticOnTheBatchSplittable() throws {
        // `x.view(x.size(0), -1)`: the folded shape differs per batch size but only feeds Reshape.
        let graph = Self.graph(
            [
                Node(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
                Node(
                    name: "n", opType: "Gather", inputs: ["s", "zero"], outputs: ["n"], attributes: ["axis": .int(0)]),
                Node(name: "un", opType: "Unsqueeze", inputs: ["n", "axes"], outputs: ["n1"]),
                Node(
                    name: "cat", opType: "Concat", inputs: ["n1", "minus"], outputs: ["target"],
                    attributes: ["axis": .int(0)]),
                Node(name: "view", opType: "Reshape", inputs: ["x", "target"], outputs: ["v"]),
                Node(name: "neg", opType: "Neg", inputs: ["v"], outputs: ["y"]),
            ], input: [.symbolic("N"), .fixed(3), .fixed(4)],
            initializers: [
                "zero": Tensor(shape: [], scalars: [Int64(0)]), "axes": Self.int64s([0]), "minus": Self.int64s([-1]),
            ])
        let runner = try GraphRunner(graph: graph, options: .init(plan: .init(threadCount: 2)))
        let xs = Self.values(36, seed: 2)
        let x = Tensor(shape: [3, 3, 4], scalars: xs)
        let refusal = try runner.batchSplitRefusal(for: ["x": x])
        #expect(refusal == nil, "refusal: \(refusal ?? "")")
        let y = try #require(try runner.run(["x": x])["y"])
        #expect(y.shape == [3, 12])
        #expect(try y.scalars(as: Float.self) == xs.map { -$0 })
    }

    @Test func saysWhyABatchRunsWhole() throws {
        let runner = try GraphRunner(graph: Self.convNet)
        let single = Tensor(shape: [1, 2, 6, 6], scalars: Self.values(72, seed: 0))
        #expect(try runner.batchSplitRefusal(for: ["x": single]) != nil)
        let pair = try GraphRunner(
            graph: Graph(
                inputs: [
                    ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("N"), .fixed(4)]),
                    ValueInfo(name: "z", dtype: .float32, dimensions: [.fixed(4), .symbolic("N")]),
                ],
                outputs: [ValueInfo(name: "y", dtype: nil, dimensions: nil)],
                nodes: [Node(name: "n", opType: "Neg", inputs: ["x"], outputs: ["y"])]))
        let x = Tensor(shape: [4, 4], scalars: Self.values(16, seed: 0))
        #expect(try pair.batchSplitRefusal(for: ["x": x, "z": x])?.contains("no batch axis") == true)
    }

    @Test func runsWholeWhenAnInputDecidesShapes() throws {
        // The caller feeds Reshape's target; it shares the batch axis by its length, but slicing it
        // per sample would change the target, so the batch must run whole.
        let graph = Graph(
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("N"), .fixed(4)]),
                ValueInfo(name: "s", dtype: .int64, dimensions: [.symbolic("N")]),
            ],
            outputs: [ValueInfo(name: "y", dtype: nil, dimensions: nil)],
            nodes: [Node(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])])
        let runner = try GraphRunner(graph: graph, options: .init(plan: .init(threadCount: 2)))
        let xs = Self.values(8, seed: 4)
        let inputs = ["x": Tensor(shape: [2, 4], scalars: xs), "s": Self.int64s([4, 2])]
        #expect(try runner.batchSplitRefusal(for: inputs) != nil)
        let y = try #require(try runner.run(inputs)["y"])
        #expect(y.shape == [4, 2])
        #expect(try y.scalars(as: Float.self) == xs)
    }

    @Test func splitsAModelExportedAtAFixedBatch() throws {
        // `Reshape` to the literal [3, -1]: it does not plan at batch 1, so the batch runs whole.
        let literal = try GraphRunner(
            graph: Self.graph(
                [Node(name: "r", opType: "Reshape", inputs: ["x", "target"], outputs: ["y"])],
                input: [.fixed(3), .fixed(4)], initializers: ["target": Self.int64s([3, -1])]))
        let x = Tensor(shape: [3, 4], scalars: Self.values(12, seed: 1))
        #expect(try literal.batchSplitRefusal(for: ["x": x]) != nil)
        #expect(try literal.run(["x": x])["y"]?.isBitwiseEqual(to: x) == true)
        // Per-sample operators at a fixed batch of 5 split, and match the definition.
        let fixedNet = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(5), .fixed(2), .fixed(6), .fixed(6)])],
            outputs: Self.convNet.outputs, nodes: Self.convNet.nodes, initializers: Self.convNet.initializers)
        let runner = try GraphRunner(graph: fixedNet, options: .init(plan: .init(threadCount: 2)))
        let batch = Tensor(shape: [5, 2, 6, 6], scalars: Self.values(360, seed: 3))
        #expect(try runner.batchSplitRefusal(for: ["x": batch]) == nil)
        let rows = try #require(try runner.run(["x": batch])["y"]).scalars(as: Float.self)
        Self.expectConvNet(rows, of: try batch.scalars(as: Float.self), "fixed batch")
    }
}
