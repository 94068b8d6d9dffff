import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct MiscOperatorTests {
    private let x = Tensor(shape: [3, 4], scalars: [Float(3), 1, 3, 0, 2, 5, 5, -1, 0, 0, 0, 0])

    /// The int64 values of a tensor.
    private func integers(_ tensor: Tensor) -> [Int64] { (try? tensor.scalars(as: Int64.self)) ?? [] }

    @Test func argMaxArgMinWithTiesAndKeepdims() throws {
        // numpy: np.argmax(x, axis=1) = [0 1 0]; last index: 3 - 1 - np.argmax(x[:, ::-1], 1) = [2 2 3].
        let first = try runLayoutOperator("ArgMax", attributes: ["axis": .int(1)], inputs: [x])[0]
        #expect(first.shape == [3, 1])
        #expect(integers(first) == [0, 1, 0])
        let last = try runLayoutOperator(
            "ArgMax", attributes: ["axis": .int(-1), "keepdims": .int(0), "select_last_index": .int(1)], inputs: [x])[0]
        #expect(last.shape == [3])
        #expect(integers(last) == [2, 2, 3])
        // numpy: np.argmin(x, axis=0) = [2 2 2 1]
        let minimum = try runLayoutOperator("ArgMin", attributes: ["keepdims": .int(0)], inputs: [x])[0]
        #expect(integers(minimum) == [2, 2, 2, 1])
    }

    @Test func topKLargestAndSmallestWithTies() throws {
        let largest = try runLayoutOperator("TopK", inputs: [x, int64Tensor([2])], constants: [1], outputCount: 2)
        expectFloats(largest[0], shape: [3, 2], [3, 3, 5, 5, 0, 0])
        #expect(integers(largest[1]) == [0, 2, 1, 2, 0, 1])
        let smallest = try runLayoutOperator(
            "TopK", attributes: ["largest": .int(0), "axis": .int(0)], inputs: [x, int64Tensor([1])], constants: [1],
            outputCount: 2)
        expectFloats(smallest[0], shape: [1, 4], [0, 0, 0, -1])
        #expect(integers(smallest[1]) == [2, 2, 2, 1])
        expectOperatorError(containing: ["k = 5"]) {
            _ = try runLayoutOperator("TopK", inputs: [x, int64Tensor([5])], constants: [1], outputCount: 2)
        }
    }

    @Test func hardmaxBothOpsetRules() throws {
        // Opset 13, axis -1: one-hot of the first maximum of each row.
        let rows = try runLayoutOperator("Hardmax", inputs: [x])[0]
        expectFloats(rows, shape: [3, 4], [1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0])
        // Opset 11, axis 0: the whole tensor is one row; the first 5 is element 5.
        let flat = try runLayoutOperator("Hardmax", attributes: ["axis": .int(0)], inputs: [x], opset: 11)[0]
        expectFloats(flat, shape: [3, 4], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    }

    @Test func modIntegerSignsAndFloatFmod() throws {
        // numpy: np.mod(a, b) = [2 -2 -1 1 0], np.fmod(a, b) = [-1 1 -1 1 0] for int8.
        let a = Tensor(shape: [5], scalars: [Int8(-7), 7, -7, 7, -128])
        let b = Tensor(shape: [5], scalars: [Int8(3), -3, -3, 3, -1])
        let mod = try runLayoutOperator("Mod", inputs: [a, b])[0]
        #expect((try? mod.scalars(as: Int8.self)) == [2, -2, -1, 1, 0])
        let fmod = try runLayoutOperator("Mod", attributes: ["fmod": .int(1)], inputs: [a, b])[0]
        #expect((try? fmod.scalars(as: Int8.self)) == [-1, 1, -1, 1, 0])
        let zero = try runLayoutOperator("Mod", inputs: [int64Tensor([5]), int64Tensor([0])])[0]
        #expect(integers(zero) == [0])
        // numpy: np.fmod(np.float32([5.5, -5.5]), 2) = [1.5 -1.5]
        let floats = try runLayoutOperator(
            "Mod", attributes: ["fmod": .int(1)],
            inputs: [Tensor(shape: [2], scalars: [Float(5.5), -5.5]), Tensor(shape: [1], scalars: [Float(2)])])[0]
        expectFloats(floats, shape: [2], [1.5, -1.5])
        expectOperatorError(containing: ["fmod"]) {
            _ = try runLayoutOperator("Mod", inputs: [x, x])
        }
    }

    @Test func preluPerChannelAndBroadcast() throws {
        let input = Tensor(shape: [1, 2, 2], scalars: [Float(-1), 2, -3, 4])
        let slope = Tensor(shape: [2], scalars: [Float(0.5), 0.25])
        // Opset 16: slope [2] broadcasts along the last axis → [-0.5, 2, -1.5, 4].
        expectFloats(try runLayoutOperator("PRelu", inputs: [input, slope])[0], shape: [1, 2, 2], [-0.5, 2, -1.5, 4])
        // Opset 6 (PyTorch export): one slope per channel (axis 1) → [-0.5, 2, -0.75, 4].
        expectFloats(
            try runLayoutOperator("PRelu", inputs: [input, slope], opset: 6)[0], shape: [1, 2, 2], [-0.5, 2, -0.75, 4])
    }

    @Test func logReductionsAndElementwiseFunctions() throws {
        let v = Tensor(shape: [2, 2], scalars: [Float(1), 2, 3, 4])
        // numpy: np.log(np.sum(np.exp(v), axis=1)) = [2.3132617 4.3132615]
        let logSumExp = try runLayoutOperator(
            "ReduceLogSumExp", attributes: ["keepdims": .int(0)], inputs: [v, int64Tensor([1])], constants: [1])[0]
        expectClose(logSumExp, shape: [2], [2.3132617, 4.3132615])
        // numpy: np.log(np.sum(v, axis=0)) = [1.3862944 1.7917595]; opset 13 takes axes as an attribute.
        let logSum = try runLayoutOperator(
            "ReduceLogSum", attributes: ["axes": .ints([0])], inputs: [v], opset: 13)[0]
        expectClose(logSum, shape: [1, 2], [1.3862944, 1.7917595])
        let values = Tensor(shape: [5], scalars: [Float(-2), -0.5, 0.25, 1, 3])
        expectFloats(
            try runLayoutOperator("ThresholdedRelu", attributes: ["alpha": .float(0.5)], inputs: [values])[0],
            shape: [5], [0, 0, 0, 1, 3])
        expectFloats(
            try runLayoutOperator(
                "Shrink", attributes: ["lambd": .float(0.5), "bias": .float(1)], inputs: [values])[0], shape: [5],
            [-1, 0, 0, 0, 2])
        let special = Tensor(shape: [4], scalars: [Float.infinity, -Float.infinity, .nan, 1])
        #expect(
            (try runLayoutOperator("IsInf", attributes: ["detect_negative": .int(0)], inputs: [special])[0]
                .scalars(as: Bool.self)) == [true, false, false, false])
        #expect(
            (try runLayoutOperator("IsNaN", inputs: [special])[0].scalars(as: Bool.self)) == [
                false, false, true, false,
            ])
    }
}
