import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct SpaceDepthOperatorTests {
    @Test func depthToSpaceBothModes() throws {
        let x = arangeTensor([1, 8, 1, 2])
        // numpy: x.reshape(1,2,2,2,1,2).transpose(0,3,4,1,5,2).reshape(1,2,2,4)
        let dcr = try runLayoutOperator("DepthToSpace", attributes: ["blocksize": .int(2)], inputs: [x])[0]
        expectFloats(dcr, shape: [1, 2, 2, 4], [0, 4, 1, 5, 8, 12, 9, 13, 2, 6, 3, 7, 10, 14, 11, 15])
        // numpy: x.reshape(1,2,2,2,1,2).transpose(0,1,4,2,5,3).reshape(1,2,2,4)
        let crd = try runLayoutOperator(
            "DepthToSpace", attributes: ["blocksize": .int(2), "mode": .string("CRD")], inputs: [x])[0]
        expectFloats(crd, shape: [1, 2, 2, 4], [0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15])
        expectOperatorError(containing: ["not divisible"]) {
            _ = try runLayoutOperator(
                "DepthToSpace", attributes: ["blocksize": .int(2)], inputs: [arangeTensor([1, 6, 1, 1])])
        }
    }

    @Test func spaceToDepth() throws {
        // numpy: y.reshape(1,1,2,2,2,2).transpose(0,3,5,1,2,4).reshape(1,4,2,2) for y = arange(16).reshape(1,1,4,4)
        let y = try runLayoutOperator(
            "SpaceToDepth", attributes: ["blocksize": .int(2)], inputs: [arangeTensor([1, 1, 4, 4])])[0]
        expectFloats(y, shape: [1, 4, 2, 2], [0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15])
    }

    @Test func triluUpperAndLower() throws {
        let m = Tensor(shape: [3, 4], scalars: (1...12).map { Int64($0) })
        // numpy: np.triu(m, 1) and np.tril(m, -1) for m = arange(1, 13).reshape(3, 4)
        let upper = try runLayoutOperator("Trilu", inputs: [m, int64Tensor([1])])[0]
        #expect((try upper.scalars(as: Int64.self)) == [0, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 12])
        let lower = try runLayoutOperator("Trilu", attributes: ["upper": .int(0)], inputs: [m, int64Tensor([-1])])[0]
        #expect((try lower.scalars(as: Int64.self)) == [0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0])
        // A diagonal far outside the matrix keeps everything (upper, k = −100).
        let all = try runLayoutOperator("Trilu", inputs: [m, int64Tensor([-100])])[0]
        #expect((try all.scalars(as: Int64.self)) == (1...12).map { Int64($0) })
    }
}
