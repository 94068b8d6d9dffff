import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct ActivationOperatorTests {
    let x = floats([-2.5, -1.0, -0.25, 0.0, 0.5, 1.0, 3.0], [7])

    func values(_ opType: String, opset: Int = 17, _ attributes: [String: Attribute] = [:]) throws -> [Float] {
        try runElementwiseFamilyOperator(opType, opset: opset, attributes: attributes, inputs: [x])[0].scalars(
            as: Float.self)
    }

    @Test func piecewiseLinearActivations() throws {
        #expect(try values("Relu") == [0, 0, 0, 0, 0.5, 1, 3])
        #expect(try values("LeakyRelu", ["alpha": .float(0.5)]) == [-1.25, -0.5, -0.125, 0, 0.5, 1, 3])
        // ONNX HardSigmoid defaults alpha 0.2, beta 0.5: max(0, min(1, 0.2x + 0.5))
        let hard = try values("HardSigmoid")
        for (value, input) in zip(hard, [-2.5, -1.0, -0.25, 0.0, 0.5, 1.0, 3.0] as [Float]) {
            #expect(abs(value - max(0, min(1, 0.2 * input + 0.5))) < 1e-6)
        }
        #expect(try values("Neg") == [2.5, 1, 0.25, 0, -0.5, -1, -3])
        #expect(try values("Floor") == [-3, -1, -1, 0, 0, 1, 3])
        #expect(try values("Ceil") == [-2, -1, 0, 0, 1, 1, 3])
        #expect(try values("Round") == [-2, -1, 0, 0, 0, 1, 3])  // half to even, as np.round
    }

    @Test func geluFollowsApproximateAttribute() throws {
        // torch.nn.functional.gelu(x) and gelu(x, approximate='tanh')
        expectGraphClose(
            try values("Gelu", opset: 20),
            [-0.015524179, -0.15865526, -0.10032342, 0, 0.34573123, 0.8413447, 2.9959497])
        expectGraphClose(
            try values("Gelu", opset: 20, ["approximate": .string("tanh")]),
            [-0.015084296, -0.158808, -0.100324646, 0, 0.345714, 0.841192, 2.9963627])
        #expect(throws: OperatorError.self) { try values("Gelu", opset: 20, ["approximate": .string("fast")]) }
    }

    @Test func clipReadsBoundsFromInputsOrAttributes() throws {
        let minimum = Tensor(scalar: Float(-1))
        let maximum = Tensor(scalar: Float(1))
        let both = try runElementwiseFamilyOperator(
            "Clip", opset: 13, inputs: [x, minimum, maximum], constants: [1, 2])[0]
        #expect(try both.scalars(as: Float.self) == [-1, -1, -0.25, 0, 0.5, 1, 1])
        // A run-time (non-constant) max, min omitted.
        let onlyMax = try runElementwiseFamilyOperator("Clip", opset: 13, inputs: [x, nil, maximum])[0]
        #expect(try onlyMax.scalars(as: Float.self) == [-2.5, -1, -0.25, 0, 0.5, 1, 1])
        let old = try runElementwiseFamilyOperator(
            "Clip", opset: 6, attributes: ["min": .float(0), "max": .float(0.5)], inputs: [x])[0]
        #expect(try old.scalars(as: Float.self) == [0, 0, 0, 0, 0.5, 0.5, 0.5])
        let ints = Tensor(shape: [3], scalars: [Int64(-5), 3, 9])
        let clipped = try runElementwiseFamilyOperator(
            "Clip", opset: 13, inputs: [ints, Tensor(scalar: Int64(0)), Tensor(scalar: Int64(4))])[0]
        #expect(try clipped.scalars(as: Int64.self) == [0, 3, 4])
    }

    @Test func integerNegAndAbs() throws {
        let ints = Tensor(shape: [3], scalars: [Int64(-5), 0, Int64.min])
        #expect(
            try runElementwiseFamilyOperator("Abs", inputs: [ints])[0].scalars(as: Int64.self) == [5, 0, Int64.min])
        #expect(
            try runElementwiseFamilyOperator("Neg", inputs: [ints])[0].scalars(as: Int64.self) == [5, 0, Int64.min])
        #expect(throws: OperatorError.self) { try runElementwiseFamilyOperator("Relu", inputs: [ints]) }
    }
}

func expectGraphClose(
    _ actual: [Float], _ expected: [Float], tolerance: Float = 2e-6, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.count == expected.count, sourceLocation: sourceLocation)
    for (index, (a, e)) in zip(actual, expected).enumerated() where !(abs(a - e) <= tolerance * max(1, abs(e))) {
        Issue.record("element \(index): \(a) vs expected \(e)", sourceLocation: sourceLocation)
        return
    }
}
