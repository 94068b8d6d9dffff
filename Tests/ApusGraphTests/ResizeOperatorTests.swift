import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

/// Checks float32 values within `tolerance`.
func expectClose(
    _ tensor: Tensor, shape: [Int], _ values: [Float], tolerance: Float = 1e-5,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(tensor.shape.dimensions == shape, sourceLocation: sourceLocation)
    let actual = (try? tensor.scalars(as: Float.self)) ?? []
    #expect(actual.count == values.count, sourceLocation: sourceLocation)
    for (index, (a, e)) in zip(actual, values).enumerated() {
        #expect(
            abs(a - e) <= tolerance * max(1, abs(e)), "element \(index): \(a) vs \(e)", sourceLocation: sourceLocation)
    }
}

@Suite struct ResizeOperatorTests {
    private let x = arangeTensor([1, 1, 2, 4])
    private let empty = Tensor(shape: [0], scalars: [Float]())

    @Test func sizesWithAxesAndKeepAspectRatio() throws {
        // onnx ReferenceEvaluator, Resize-19 mode=linear axes=[2,3] keep_aspect_ratio_policy=not_smaller
        // coordinate_transformation_mode=pytorch_half_pixel, x=arange(8).reshape(1,1,2,4), sizes=[3,3].
        let y = try runLayoutOperator(
            "Resize",
            attributes: [
                "mode": .string("linear"), "axes": .ints([2, 3]), "keep_aspect_ratio_policy": .string("not_smaller"),
                "coordinate_transformation_mode": .string("pytorch_half_pixel"),
            ], inputs: [x, nil, nil, int64Tensor([3, 3])], constants: [3], opset: 19)[0]
        expectClose(
            y, shape: [1, 1, 3, 6],
            [
                0.0, 0.5, 1.1666666, 1.8333334, 2.5, 3.0, 2.0, 2.5, 3.1666667, 3.8333333, 4.5, 5.0, 4.0, 4.5,
                5.1666665, 5.8333335, 6.5, 7.0,
            ])
    }

    @Test func scalesWithEmptyRoiAndCubicExcludeOutside() throws {
        // onnx ReferenceEvaluator, Resize-19 mode=cubic exclude_outside=1 cubic_coeff_a=-0.5,
        // x=arange(8).reshape(1,1,2,4), roi=[], scales=[1,1,1.5,0.75].
        let scales = Tensor(shape: [4], scalars: [Float(1), 1, 1.5, 0.75])
        let y = try runLayoutOperator(
            "Resize",
            attributes: ["mode": .string("cubic"), "exclude_outside": .int(1), "cubic_coeff_a": .float(-0.5)],
            inputs: [x, empty, scales], constants: [1, 2], opset: 19)[0]
        expectClose(
            y, shape: [1, 1, 3, 3],
            [-0.1603125, 1.2368432, 2.6339989, 2.1028442, 3.5, 4.8971558, 4.366001, 5.763157, 7.1603127])
    }

    @Test func opset10NearestAndUpsample() throws {
        // Upsampling by 2 with asymmetric coordinates repeats every element twice on each axis.
        let scales = Tensor(shape: [4], scalars: [Float(1), 1, 2, 2])
        for opType in ["Resize", "Upsample"] {
            let y = try runLayoutOperator(opType, inputs: [x, scales], constants: [1], opset: 10)[0]
            expectFloats(
                y, shape: [1, 1, 4, 8],
                [
                    0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 4, 4, 5, 5, 6, 6, 7, 7,
                ])
        }
    }

    @Test func refusesBadInputs() throws {
        let scales = Tensor(shape: [4], scalars: [Float(1), 1, 2, 2])
        expectOperatorError(containing: ["not both"]) {
            _ = try runLayoutOperator(
                "Resize", inputs: [x, empty, scales, int64Tensor([1, 1, 4, 8])], constants: [1, 2, 3])
        }
        expectOperatorError(containing: ["3 values", "4 axes"]) {
            _ = try runLayoutOperator(
                "Resize", inputs: [x, empty, Tensor(shape: [3], scalars: [Float(1), 1, 2])], constants: [1, 2])
        }
        expectOperatorError(containing: ["must be a constant"]) {
            _ = try runLayoutOperator("Resize", inputs: [x, empty, scales], constants: [1])
        }
        expectOperatorError(containing: ["antialias"]) {
            _ = try runLayoutOperator(
                "Resize", attributes: ["antialias": .int(1)], inputs: [x, empty, scales], constants: [1, 2])
        }
    }
}
