import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

/// `np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7 - 1.5`
let graphNormalizationInput = floats((0..<24).map { Float($0) / 7 - 1.5 }, [2, 3, 4])

@Suite struct NormalizationOperatorTests {
    @Test func softmaxAxisSemanticsDependOnOpset() throws {
        // Opset 13: along axis 1 only. numpy: e = np.exp(x - x.max(1, keepdims=True)); e / e.sum(1, keepdims=True)
        let new = try runElementwiseFamilyOperator(
            "Softmax", opset: 13, attributes: ["axis": .int(1)], inputs: [graphNormalizationInput])[0]
        expectGraphClose(
            try new.scalars(as: Float.self),
            [
                0.1693047, 0.16930473, 0.1693047, 0.16930473, 0.29980394, 0.29980394, 0.29980394, 0.29980394, 0.5308913,
                0.5308913, 0.5308913, 0.5308913, 0.1693047, 0.1693047, 0.16930473, 0.1693047, 0.29980394, 0.29980394,
                0.29980394, 0.2998039, 0.5308913, 0.5308913, 0.5308913, 0.53089136,
            ])
        // Opset 11: flattened to [2, 12] at axis 1. numpy: softmax of x.reshape(2, 12) along 1.
        let old = try runElementwiseFamilyOperator(
            "Softmax", opset: 11, attributes: ["axis": .int(1)], inputs: [graphNormalizationInput])[0]
        expectGraphClose(
            try old.scalars(as: Float.self),
            [
                0.03373047, 0.038910296, 0.04488555, 0.051778402, 0.059729747, 0.06890215, 0.07948311, 0.09168892,
                0.10576915, 0.122011565, 0.14074828, 0.16236229, 0.033730477, 0.038910292, 0.044885553, 0.0517784,
                0.05972976, 0.06890216, 0.079483114, 0.09168893, 0.10576915, 0.12201158, 0.14074829, 0.16236232,
            ])
        #expect(throws: OperatorError.self) {
            try runElementwiseFamilyOperator(
                "Softmax", opset: 13, attributes: ["axis": .int(3)], inputs: [graphNormalizationInput])
        }
    }

    @Test func logSoftmaxDefaultsToLastAxis() throws {
        let y = try runElementwiseFamilyOperator("LogSoftmax", opset: 13, inputs: [graphNormalizationInput])[0]
        // torch.log_softmax(x, -1): every row of 4 is an arithmetic sequence with step 1/7.
        let row: [Float] = [-1.6132985, -1.4704413, -1.3275843, -1.1847271]
        expectGraphClose(try y.scalars(as: Float.self), Array([[Float]](repeating: row, count: 6).joined()))
    }

    @Test func layerNormalizationComputesOptionalOutputs() throws {
        let scale = floats([1, 2, 0.5, -1], [4])
        let bias = floats([0, 0.1, 0.2, 0.3], [4])
        let outputs = try runElementwiseFamilyOperator(
            "LayerNormalization", attributes: ["axis": .int(-1), "epsilon": .float(1e-5)],
            inputs: [graphNormalizationInput, scale, bias], constants: [1, 2], outputCount: 3)
        #expect(outputs.count == 3)
        #expect(outputs[1].shape == [2, 3, 1])
        // torch.nn.functional.layer_norm(x, (4,), scale, bias, eps=1e-5), first two rows
        expectGraphClose(
            Array(try outputs[0].scalars(as: Float.self).prefix(8)),
            [-1.3413767, -0.7942496, 0.42356315, -1.0413783, -1.3413777, -0.79425156, 0.4235631, -1.041378],
            tolerance: 5e-6)
        // numpy: x.mean(-1)
        expectGraphClose(
            try outputs[1].scalars(as: Float.self), [-1.2857144, -0.7142857, -0.14285713, 0.4285714, 1, 1.5714285])
        let single = try runElementwiseFamilyOperator("LayerNormalization", inputs: [graphNormalizationInput, scale])
        #expect(single.count == 1)
        #expect(throws: OperatorError.self) {
            try runElementwiseFamilyOperator(
                "LayerNormalization", inputs: [graphNormalizationInput, floats([1, 2, 3], [3])])
        }
    }

    @Test func batchNormalizationWithConstantAndRuntimeStatistics() throws {
        let x = floats((0..<16).map { Float($0) / 3 }, [1, 2, 2, 4])
        let parameters = [
            floats([1.5, -0.5], [2]), floats([0.1, 0.2], [2]), floats([2, 3], [2]), floats([4, 0.25], [2]),
        ]
        // numpy: (x - mean) / np.sqrt(var + 1e-5) * scale + bias, per channel
        let expected: [Float] = [
            -1.3999982, -1.1499984, -0.8999988, -0.6499991, -0.3999994, -0.14999974, 0.1, 0.34999964, 0.53332657, 0.2,
            -0.13332658, -0.4666534, -0.79998, -1.1333067, -1.4666331, -1.7999599,
        ]
        for constants in [Set([1, 2, 3, 4]), []] {
            let y = try runElementwiseFamilyOperator(
                "BatchNormalization", opset: 15, inputs: [x] + parameters, constants: constants)[0]
            expectGraphClose(try y.scalars(as: Float.self), expected)
        }
        #expect(throws: OperatorError.self) {
            try runElementwiseFamilyOperator(
                "BatchNormalization", opset: 15, attributes: ["training_mode": .int(1)], inputs: [x] + parameters)
        }
    }

    @Test func instanceNormalizationMatchesPyTorch() throws {
        let x = floats((0..<16).map { Float($0) / 3 }, [1, 2, 2, 4])
        let y = try runElementwiseFamilyOperator(
            "InstanceNormalization", inputs: [x, floats([1.5, -0.5], [2]), floats([0.1, 0.2], [2])])[0]
        // torch.nn.functional.instance_norm(x, weight=[1.5, -0.5], bias=[0.1, 0.2], eps=1e-5)
        expectGraphClose(
            try y.scalars(as: Float.self),
            [
                -2.1912682, -1.5366201, -0.881972, -0.22732401, 0.42732415, 1.081972, 1.7366202, 2.391268, 0.96375585,
                0.7455399, 0.52732396, 0.3091078, 0.09089184, -0.12732428, -0.3455401, -0.5637562,
            ])
    }
}
