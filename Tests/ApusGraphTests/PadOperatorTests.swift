import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct PadOperatorTests {
    private let x = arangeTensor([2, 3])

    @Test func padConstantWithValueAndNegativePads() throws {
        // numpy: np.pad(np.arange(6).reshape(2, 3), ((1, 0), (0, 2)), constant_values=9)
        let y = try runLayoutOperator(
            "Pad", inputs: [x, int64Tensor([1, 0, 0, 2]), Tensor(scalar: Float(9))], constants: [1, 2])[0]
        expectFloats(y, shape: [3, 5], [9, 9, 9, 9, 9, 0, 1, 2, 9, 9, 3, 4, 5, 9, 9])
        // numpy: np.pad(x, ((0, 1), (0, 0)), constant_values=7)[:, 1:]  (pads [0, -1, 1, 0])
        let cropped = try runLayoutOperator(
            "Pad", inputs: [x, int64Tensor([0, -1, 1, 0]), Tensor(scalar: Float(7))], constants: [1, 2])[0]
        expectFloats(cropped, shape: [3, 2], [1, 2, 4, 5, 7, 7])
        // Omitted value pads with 0; opset 18 axes select axis 1 only.
        let axes = try runLayoutOperator(
            "Pad", inputs: [x, int64Tensor([1, 0]), nil, int64Tensor([-1])], constants: [1, 3])[0]
        expectFloats(axes, shape: [2, 4], [0, 0, 1, 2, 0, 3, 4, 5])
        // Opset 2 attributes.
        let old = try runLayoutOperator(
            "Pad", attributes: ["pads": .ints([0, 1, 0, 0]), "value": .float(-1)], inputs: [x], opset: 2)[0]
        expectFloats(old, shape: [2, 4], [-1, 0, 1, 2, -1, 3, 4, 5])
    }

    @Test func padReflectEdgeAndWrap() throws {
        // numpy: np.pad(x, ((1, 1), (2, 2)), mode='reflect')
        let reflect = try runLayoutOperator(
            "Pad", attributes: ["mode": .string("reflect")], inputs: [x, int64Tensor([1, 2, 1, 2])], constants: [1])[0]
        expectFloats(
            reflect, shape: [4, 7],
            [5, 4, 3, 4, 5, 4, 3, 2, 1, 0, 1, 2, 1, 0, 5, 4, 3, 4, 5, 4, 3, 2, 1, 0, 1, 2, 1, 0])
        // numpy: np.pad(np.arange(3.), (5, 4), mode='reflect') — pads larger than the axis keep reflecting.
        let long = try runLayoutOperator(
            "Pad", attributes: ["mode": .string("reflect")], inputs: [arangeTensor([3]), int64Tensor([5, 4])],
            constants: [1])[0]
        expectFloats(long, shape: [12], [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2])
        // numpy: np.pad(x, ((0, 1), (1, 2)), mode='edge')
        let edge = try runLayoutOperator(
            "Pad", attributes: ["mode": .string("edge")], inputs: [x, int64Tensor([0, 1, 1, 2])], constants: [1])[0]
        expectFloats(edge, shape: [3, 6], [0, 0, 1, 2, 2, 2, 3, 3, 4, 5, 5, 5, 3, 3, 4, 5, 5, 5])
        // numpy: np.pad(x, ((1, 0), (0, 4)), mode='wrap')
        let wrap = try runLayoutOperator(
            "Pad", attributes: ["mode": .string("wrap")], inputs: [x, int64Tensor([1, 0, 0, 4])], constants: [1])[0]
        expectFloats(wrap, shape: [3, 7], [3, 4, 5, 3, 4, 5, 3, 0, 1, 2, 0, 1, 2, 0, 3, 4, 5, 3, 4, 5, 3])
        expectOperatorError(containing: ["negative", "axis 1"]) {
            _ = try runLayoutOperator("Pad", inputs: [x, int64Tensor([0, -2, 0, -2])], constants: [1])
        }
        expectOperatorError(containing: ["'mirror'"]) {
            _ = try runLayoutOperator(
                "Pad", attributes: ["mode": .string("mirror")], inputs: [x, int64Tensor([0, 0, 0, 0])])
        }
    }

    @Test func expandBroadcastsBothWays() throws {
        // numpy: np.broadcast_to(np.arange(3).reshape(3, 1), (2, 3, 4))
        let column = arangeTensor([3, 1])
        let y = try runLayoutOperator("Expand", inputs: [column, int64Tensor([2, 1, 4])], constants: [1])[0]
        expectFloats(
            y, shape: [2, 3, 4], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
        // A shape smaller than the input keeps the input's dimensions.
        let same = try runLayoutOperator("Expand", inputs: [x, int64Tensor([1])], constants: [1])[0]
        expectFloats(same, shape: [2, 3], [0, 1, 2, 3, 4, 5])
        expectOperatorError(containing: ["[2, 3]", "[4]"]) {
            _ = try runLayoutOperator("Expand", inputs: [x, int64Tensor([4])], constants: [1])
        }
    }

    @Test func tileRepeatsEveryAxis() throws {
        // numpy: np.tile(np.arange(6).reshape(2, 3), (2, 2))
        let y = try runLayoutOperator("Tile", inputs: [x, int64Tensor([2, 2])], constants: [1])[0]
        expectFloats(
            y, shape: [4, 6], [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5, 0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
        let none = try runLayoutOperator("Tile", inputs: [x, int64Tensor([0, 3])], constants: [1])[0]
        #expect(none.shape == [0, 9])
        expectOperatorError(containing: ["[2]", "2 non-negative"]) {
            _ = try runLayoutOperator("Tile", inputs: [x, int64Tensor([2])], constants: [1])
        }
    }
}
