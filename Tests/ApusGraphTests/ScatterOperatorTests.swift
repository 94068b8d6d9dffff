import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct ScatterOperatorTests {
    @Test func scatterElementsAddOnAxis1() throws {
        // numpy loop: o = ones((2,3)); o[i, idx[i,j]] += up[i,j] for idx = [[1,0,2],[0,2,1]], up = [[1,2,3],[4,5,6]]
        let data = Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        let indices = Tensor(shape: [2, 3], scalars: [Int64(1), 0, 2, 0, 2, 1])
        let updates = Tensor(shape: [2, 3], scalars: [Float(1), 2, 3, 4, 5, 6])
        let y = try runLayoutOperator(
            "ScatterElements", attributes: ["axis": .int(1), "reduction": .string("add")],
            inputs: [data, indices, updates])[0]
        expectFloats(y, shape: [2, 3], [3, 2, 4, 5, 7, 6])
        expectOperatorError(containing: ["index 3"]) {
            _ = try runLayoutOperator(
                "ScatterElements", attributes: ["axis": .int(1)],
                inputs: [data, Tensor(shape: [2, 3], scalars: [Int64(3), 0, 0, 0, 0, 0]), updates])
        }
    }

    @Test func scatterNDMaxOnSlices() throws {
        // numpy loop: o = arange(8).reshape(2,2,2); o[tuple(ind[t])] = maximum(o[...], u[t])
        // for ind = [[1,0],[1,0]], u = [[10,20],[1,1]]
        let y = try runLayoutOperator(
            "ScatterND", attributes: ["reduction": .string("max")],
            inputs: [
                arangeTensor([2, 2, 2]), Tensor(shape: [2, 2], scalars: [Int64(1), 0, 1, 0]),
                Tensor(shape: [2, 2], scalars: [Float(10), 20, 1, 1]),
            ])[0]
        expectFloats(y, shape: [2, 2, 2], [0, 1, 2, 3, 10, 20, 6, 7])
    }
}
