import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct ReductionOperatorTests {
    let x = graphNormalizationInput
    let axes02 = Tensor(shape: [2], scalars: [Int64(0), Int64(-1)])

    @Test func reduceMeanAxesAttributeBeforeOpset18AndInputAfter() throws {
        // numpy: x.mean(axis=(0, 2), keepdims=True) → shape [1, 3, 1]
        let expected: [Float] = [-0.4285715, 0.14285716, 0.71428573]
        let old = try runElementwiseFamilyOperator(
            "ReduceMean", opset: 13, attributes: ["axes": .ints([0, -1])], inputs: [x])[0]
        #expect(old.shape == [1, 3, 1])
        expectGraphClose(try old.scalars(as: Float.self), expected)
        let new = try runElementwiseFamilyOperator("ReduceMean", opset: 18, inputs: [x, axes02], constants: [1])[0]
        #expect(new.shape == [1, 3, 1])
        expectGraphClose(try new.scalars(as: Float.self), expected)
        #expect(throws: OperatorError.self) {
            try runElementwiseFamilyOperator("ReduceMean", opset: 18, inputs: [x, axes02])  // axes not constant
        }
    }

    @Test func reduceSumKeepdimsAndEmptyAxes() throws {
        let axis1 = Tensor(shape: [1], scalars: [Int64(1)])
        let y = try runElementwiseFamilyOperator(
            "ReduceSum", opset: 13, attributes: ["keepdims": .int(0)], inputs: [x, axis1], constants: [1])[0]
        #expect(y.shape == [2, 4])
        // numpy: x.sum(axis=1)
        expectGraphClose(
            try y.scalars(as: Float.self),
            [-2.7857141, -2.357143, -1.9285715, -1.5, 2.357143, 2.7857141, 3.2142856, 3.642857])
        // No axes: reduce everything, unless noop_with_empty_axes.
        let all = try runElementwiseFamilyOperator("ReduceSum", opset: 13, inputs: [x])[0]
        #expect(all.shape == [1, 1, 1])
        expectGraphClose(try all.scalars(as: Float.self), [24.0 / 7])  // by hand: Σk/7 − 24·1.5 = 276/7 − 36
        let noop = try runElementwiseFamilyOperator(
            "ReduceSum", opset: 13, attributes: ["noop_with_empty_axes": .int(1)], inputs: [x])[0]
        #expect(noop.isBitwiseEqual(to: x))
        // Opset 11 ReduceSum reads the axes attribute.
        let old = try runElementwiseFamilyOperator(
            "ReduceSum", opset: 11, attributes: ["axes": .ints([1]), "keepdims": .int(0)], inputs: [x])[0]
        #expect(old.isBitwiseEqual(to: y))
    }

    @Test func reduceMaxAndL2() throws {
        let y = try runElementwiseFamilyOperator(
            "ReduceMax", opset: 13, attributes: ["axes": .ints([2]), "keepdims": .int(0)], inputs: [x])[0]
        // numpy: x.max(axis=-1)
        expectGraphClose(
            try y.scalars(as: Float.self), [-1.0714285, -0.5, 0.07142854, 0.6428571, 1.2142856, 1.7857144])
        let l2 = try runElementwiseFamilyOperator(
            "ReduceL2", opset: 13, attributes: ["keepdims": .int(0)], inputs: [x])[0]
        #expect(l2.shape == [])
        expectGraphClose(try l2.scalars(as: Float.self), [4.8948116])  // numpy: np.sqrt((x * x).sum())
        #expect(throws: OperatorError.self) {
            try runElementwiseFamilyOperator("ReduceMax", opset: 13, attributes: ["axes": .ints([3])], inputs: [x])
        }
    }
}
