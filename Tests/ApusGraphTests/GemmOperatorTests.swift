import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

/// Expected values from onnxruntime on the `patterned` inputs (see ConvOperatorTests).
@Suite struct GemmOperatorTests {
    init() throws { try BLAS.load() }

    @Test func gemmTransposedWithColumnAddend() throws {
        let node = Node(
            name: "g", opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["y"],
            attributes: ["transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2)])
        let y = try runNode(
            node, inputs: [patterned([4, 3], salt: 0), patterned([5, 4], salt: 1), patterned([3, 1], salt: 2)],
            constants: [1, 2])
        try expectValues(
            y[0], shape: [3, 5],
            [-0.88, -1.14, -0.74, -1.88, -0.6, 1.6, 1.62, 1.64, 1.66, 1.68, 0.56, -0.46, 0.28, 0.14, 0])
    }

    @Test func fusedGemmAppliesActivation() throws {
        let node = Node(
            name: "g", opType: "FusedGemm", domain: Node.apusDomain, inputs: ["a", "b", "c"], outputs: ["y"],
            attributes: [
                "transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2),
                "activation": .string("Relu"),
            ])
        let y = try runNode(
            node, domain: Node.apusDomain,
            inputs: [patterned([4, 3], salt: 0), patterned([5, 4], salt: 1), patterned([3, 1], salt: 2)])
        try expectValues(y[0], shape: [3, 5], [0, 0, 0, 0, 0, 1.6, 1.62, 1.64, 1.66, 1.68, 0.56, 0, 0.28, 0.14, 0])
    }

    @Test func gemmRejectsBadAddend() throws {
        let op = try Gemm(node: Node(name: "g", opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["y"]))
        #expect(throws: OperatorError.self) {
            try op.outputFacts([
                ValueFact(dtype: .float32, shape: [2, 3]), ValueFact(dtype: .float32, shape: [3, 4]),
                ValueFact(dtype: .float32, shape: [3]),
            ])
        }
        #expect(throws: OperatorError.self) {
            try op.outputFacts([ValueFact(dtype: .float32, shape: [2, 3]), ValueFact(dtype: .float32, shape: [2, 4])])
        }
    }

    @Test func matMulVectorTimesBatch() throws {
        let node = Node(name: "m", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])
        let y = try runNode(node, inputs: [patterned([3], salt: 0), patterned([2, 3, 4], salt: 1)])
        try expectValues(y[0], shape: [2, 4], [1.2, -1.08, 0.6, 1.4, -1.08, 0.6, 1.4, -0.88])
    }

    @Test(arguments: [1, 2])
    func matMulBroadcastsBatch(threads: Int) throws {
        let node = Node(name: "m", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])
        let y = try runNode(
            node, inputs: [patterned([2, 1, 2, 3], salt: 0), patterned([3, 3], salt: 1)], threads: threads)
        try expectValues(
            y[0], shape: [2, 1, 2, 3], [0, -0.52, 0.28, -1.6, 0.56, 0.08, -1.44, 0.32, 0.32, -1.28, 0.08, 0.56])
        let op = try MatMul(node: node)
        #expect(throws: OperatorError.self) {
            try op.outputFacts([
                ValueFact(dtype: .float32, shape: [2, 2, 3]), ValueFact(dtype: .float32, shape: [3, 3, 4]),
            ])
        }
    }
}
