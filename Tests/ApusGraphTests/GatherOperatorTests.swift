import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct GatherOperatorTests {
    @Test func gatherAxisOneWithNegativeIndices() throws {
        // numpy: np.take(np.arange(12).reshape(3, 4), [[3, -1], [0, 1]], axis=1)
        let data = arangeTensor([3, 4])
        let indices = Tensor(shape: [2, 2], scalars: [Int64(3), -1, 0, 1])
        let y = try runLayoutOperator("Gather", attributes: ["axis": .int(1)], inputs: [data, indices])[0]
        expectFloats(y, shape: [3, 2, 2], [3, 3, 0, 1, 7, 7, 4, 5, 11, 11, 8, 9])
        let constant = try runLayoutOperator(
            "Gather", attributes: ["axis": .int(-1)], inputs: [data, indices], constants: [1])[0]
        expectFloats(constant, shape: [3, 2, 2], [3, 3, 0, 1, 7, 7, 4, 5, 11, 11, 8, 9])
    }

    @Test func gatherAxisZeroInt32IndicesAndScalarIndex() throws {
        // numpy: np.take(np.arange(12).reshape(3, 4), [2, -3], axis=0)
        let data = arangeTensor([3, 4])
        let y = try runLayoutOperator("Gather", inputs: [data, Tensor(shape: [2], scalars: [Int32(2), -3])])[0]
        expectFloats(y, shape: [2, 4], [8, 9, 10, 11, 0, 1, 2, 3])
        // A rank-0 index drops the axis.
        let row = try runLayoutOperator("Gather", inputs: [data, Tensor(scalar: Int64(1))])[0]
        expectFloats(row, shape: [4], [4, 5, 6, 7])
        let ints = Tensor(shape: [3], scalars: [Int64(7), 8, 9])
        let picked = try runLayoutOperator("Gather", inputs: [ints, Tensor(shape: [0], scalars: [Int64]())])[0]
        #expect(picked.shape == [0])
    }

    @Test func gatherOutOfRangeFailsAtPlanAndRunTime() throws {
        let data = arangeTensor([3, 4])
        let bad = Tensor(shape: [2], scalars: [Int64(1), 4])
        // Plan time: the constant indices are checked by outputFacts.
        expectOperatorError(containing: ["index 4", "position 1", "size 4"]) {
            _ = try runLayoutOperator("Gather", attributes: ["axis": .int(1)], inputs: [data, bad], constants: [1])
        }
        // Run time: indices not known at plan time.
        expectOperatorError(containing: ["index -4", "size 3"]) {
            _ = try runLayoutOperator("Gather", inputs: [data, Tensor(shape: [1], scalars: [Int32(-4)])])
        }
        expectOperatorError(containing: ["axis 2"]) {
            _ = try runLayoutOperator("Gather", attributes: ["axis": .int(2)], inputs: [data, bad])
        }
    }

    @Test func gatherElementsAlongAxisZero() throws {
        // numpy: np.take_along_axis(np.arange(12).reshape(3, 4)[:, :3], [[1, 2, 0], [2, 0, 1]], axis=0)
        // (indices [[1, -1, 0], [2, 0, 1]] with -1 → 2)
        let data = arangeTensor([3, 4])
        let indices = Tensor(shape: [2, 3], scalars: [Int64(1), -1, 0, 2, 0, 1])
        let y = try runLayoutOperator("GatherElements", inputs: [data, indices])[0]
        expectFloats(y, shape: [2, 3], [4, 9, 2, 8, 1, 6])
        expectOperatorError(containing: ["index 3", "size 3"]) {
            _ = try runLayoutOperator(
                "GatherElements", inputs: [data, Tensor(shape: [1, 1], scalars: [Int64(3)])], constants: [1])
        }
    }
}
