import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

/// Expected values from onnxruntime on the `patterned` inputs (see ConvOperatorTests).
@Suite struct PoolingOperatorTests {
    @Test func maxPoolCeilModeWithPads() throws {
        let node = Node(
            name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
            attributes: [
                "kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                "ceil_mode": .int(1),
            ])
        let y = try runNode(node, inputs: [patterned([1, 1, 5, 5], salt: 3)])
        try expectValues(y[0], shape: [1, 1, 3, 3], [-0.4, 1, 0.8, 0.4, 1, 0.2, 0.8, 0.4, 1])
    }

    @Test func averagePoolCeilModeCountIncludePad() throws {
        let node = Node(
            name: "p", opType: "AveragePool", inputs: ["x"], outputs: ["y"],
            attributes: [
                "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 0, 0]),
                "ceil_mode": .int(1),
                "count_include_pad": .int(1),
            ])
        let y = try runNode(node, inputs: [patterned([1, 1, 5, 6], salt: 3)])
        try expectValues(
            y[0], shape: [1, 1, 3, 3], [0.0444444, 0, -0.0888889, 0.155556, -0.111111, 0, 0, -0.1, 0.133333])
    }

    @Test func averagePoolSameUpper() throws {
        let node = Node(
            name: "p", opType: "AveragePool", inputs: ["x"], outputs: ["y"],
            attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")])
        let y = try runNode(node, inputs: [patterned([1, 2, 5, 5], salt: 3)])
        try expectValues(
            y[0], shape: [1, 2, 3, 3],
            [
                -0.05, 0.0333333, -0.25, 0, 0.0222222, -0.2, 0.05, 0.133333, 0.4, -0.25, -0.166667, 0.1, -0.2,
                -0.177778,
                -0.0333333, 0.4, -0.0666667, 0.2,
            ])
    }

    @Test func globalPools() throws {
        let average = try runNode(
            Node(name: "g", opType: "GlobalAveragePool", inputs: ["x"], outputs: ["y"]),
            inputs: [patterned([1, 2, 3, 3], salt: 0)])
        try expectValues(average[0], shape: [1, 2, 1, 1], [-0.0444445, 0.0888889])
        let maximum = try runNode(
            Node(name: "g", opType: "GlobalMaxPool", inputs: ["x"], outputs: ["y"]),
            inputs: [patterned([1, 2, 3, 3], salt: 0)])
        try expectValues(maximum[0], shape: [1, 2, 1, 1], [1, 1])
    }

    @Test func refusesIndicesAndMissingKernel() throws {
        let factory = try #require(OperatorRegistry.onnx["MaxPool"])
        #expect(throws: OperatorError.self) {
            try factory(
                Node(
                    name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y", "i"],
                    attributes: ["kernel_shape": .ints([2, 2])]), 12)
        }
        #expect(throws: OperatorError.self) {
            try factory(Node(name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y"]), 12)
        }
        let pool = try factory(
            Node(
                name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y", ""],
                attributes: ["kernel_shape": .ints([3, 3])]), 12)
        #expect(throws: OperatorError.self) { try pool.outputFacts([ValueFact(dtype: .float32, shape: [1, 1, 2, 2])]) }
    }
}
