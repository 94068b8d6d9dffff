import Testing

@testable import ApusOps

@Suite struct ResizeTests {
    /// Runs the fast kernel on `context` and the reference on the same tables.
    static func both(
        _ input: [Float], shape: [Int], tables: [Resize.AxisTable], extrapolation: Float = 0, threads: Int = 2
    ) -> (fast: [Float], reference: [Float]) {
        let count = tables.map(\.outputCount).reduce(1, *)
        var fast = [Float](repeating: .nan, count: count)
        var reference = [Float](repeating: .nan, count: count)
        input.withUnsafeBufferPointer { source in
            fast.withUnsafeMutableBufferPointer { out in
                Resize.resize(
                    input: source.baseAddress!, inputShape: shape, output: out.baseAddress!, tables: tables,
                    extrapolationValue: extrapolation, context: ComputeContext(threadCount: threads))
            }
            reference.withUnsafeMutableBufferPointer { out in
                Resize.resizeReference(
                    input: source.baseAddress!, inputShape: shape, output: out.baseAddress!, tables: tables,
                    extrapolationValue: extrapolation)
            }
        }
        return (fast, reference)
    }

    static func table(
        _ input: Int, _ output: Int, _ mode: Resize.Mode, _ t: Resize.CoordinateTransformation = .halfPixel
    )
        -> Resize.AxisTable
    {
        Resize.axisTable(
            inputCount: input, outputCount: output, scale: Double(output) / Double(input), mode: mode,
            transformation: t)
    }

    @Test func bilinearHalfPixelMatchesONNXReference() {
        // onnx.reference.ops.op_resize._interpolate_nd(np.arange(12.).reshape(1,1,3,4), _linear_coeffs,
        //   scale_factors=[1,1,2,1.5], coordinate_transformation_mode="half_pixel"), cast to float32.
        let expected: [Float] = [
            0.0, 0.5, 1.1666666, 1.8333334, 2.5, 3.0, 1.0, 1.5, 2.1666667, 2.8333333, 3.5, 4.0, 3.0, 3.5, 4.1666665,
            4.8333335, 5.5, 6.0, 5.0, 5.5, 6.1666665, 6.8333335, 7.5, 8.0, 7.0, 7.5, 8.166667, 8.833333, 9.5, 10.0,
            8.0, 8.5, 9.166667, 9.833333, 10.5, 11.0,
        ]
        let tables = [
            Resize.AxisTable.identity(count: 1), .identity(count: 1),
            Resize.axisTable(inputCount: 3, outputCount: 6, scale: 2, mode: .linear, transformation: .halfPixel),
            Resize.axisTable(inputCount: 4, outputCount: 6, scale: 1.5, mode: .linear, transformation: .halfPixel),
        ]
        let (fast, reference) = Self.both((0..<12).map(Float.init), shape: [1, 1, 3, 4], tables: tables)
        for (index, value) in expected.enumerated() {
            #expect(abs(fast[index] - value) <= 1e-5, "fast \(index)")
            #expect(abs(reference[index] - value) <= 1e-5, "reference \(index)")
        }
    }

    @Test func cubicNearestAndAntialiasMatchONNXReference() {
        let input = (0..<12).map(Float.init)
        // _interpolate_nd(x, cubic A=-0.75, output_size=[1,1,2,3], coordinate_transformation_mode="align_corners")
        let cubic = Self.both(
            input, shape: [3, 4],
            tables: [
                Resize.axisTable(
                    inputCount: 3, outputCount: 2, scale: 2.0 / 3, mode: .cubic(a: -0.75),
                    transformation: .alignCorners),
                Resize.axisTable(
                    inputCount: 4, outputCount: 3, scale: 0.75, mode: .cubic(a: -0.75), transformation: .alignCorners),
            ])
        for (value, expected) in zip(cubic.fast, [0.0, 1.5, 3.0, 8.0, 9.5, 11.0] as [Float]) {
            #expect(abs(value - expected) <= 1e-5)
        }
        // _interpolate_nd(x, nearest round_prefer_ceil, output_size=[1,1,5,3], "asymmetric")
        let nearest = Self.both(
            input, shape: [3, 4],
            tables: [
                Resize.axisTable(
                    inputCount: 3, outputCount: 5, scale: 5.0 / 3, mode: .nearest(.roundPreferCeil),
                    transformation: .asymmetric),
                Resize.axisTable(
                    inputCount: 4, outputCount: 3, scale: 0.75, mode: .nearest(.roundPreferCeil),
                    transformation: .asymmetric),
            ])
        #expect(nearest.fast == [0, 1, 3, 4, 5, 7, 4, 5, 7, 8, 9, 11, 8, 9, 11])
        #expect(nearest.reference == nearest.fast)
        // _interpolate_nd(x, _linear_coeffs_antialias, output_size=[1,1,2,2], "half_pixel")
        let antialias = Self.both(
            input, shape: [3, 4],
            tables: [
                Resize.axisTable(
                    inputCount: 3, outputCount: 2, scale: 2.0 / 3, mode: .linear, transformation: .halfPixel,
                    antialias: true),
                Resize.axisTable(
                    inputCount: 4, outputCount: 2, scale: 0.5, mode: .linear, transformation: .halfPixel,
                    antialias: true),
            ])
        for (value, expected) in zip(antialias.fast, [1.9583334, 3.7083333, 7.2916665, 9.041667] as [Float]) {
            #expect(abs(value - expected) <= 1e-5)
        }
    }

    @Test func fastMatchesReferenceAcrossWidthsModesAndExtrapolation() {
        let modes: [Resize.Mode] = [.nearest(.roundPreferFloor), .linear, .cubic(a: -0.5)]
        for width in [1, 2, 15, 16, 17, 31] {
            for outputWidth in [0, 1, 15, 16, 17, 37] {
                for mode in modes {
                    let shape = [2, 3, 5, width]
                    let input = (0..<shape.reduce(1, *)).map { Float(($0 * 7919) % 101) / 10 }
                    let tables = [
                        Resize.AxisTable.identity(count: 2), .identity(count: 3), Self.table(5, 7, mode),
                        Self.table(width, outputWidth, mode, .tfCropAndResize(start: -0.1, end: 0.8)),
                    ]
                    let (fast, reference) = Self.both(input, shape: shape, tables: tables, extrapolation: -3)
                    for (a, b) in zip(fast, reference) {
                        #expect(abs(a - b) <= 1e-4 * max(1, abs(b)), "width \(width)→\(outputWidth) \(mode)")
                    }
                    let single = Self.both(input, shape: shape, tables: tables, extrapolation: -3, threads: 1)
                    #expect(single.fast == fast, "thread count changed the result")
                }
            }
        }
        // Three resized axes take the reference path; one resized axis the row path.
        let threeAxes = [Self.table(2, 3, .linear), Self.table(3, 2, .linear), Self.table(4, 5, .linear)]
        let input = (0..<24).map(Float.init)
        let result = Self.both(input, shape: [2, 3, 4], tables: threeAxes)
        #expect(result.fast == result.reference)
        let lastOnly = [Resize.AxisTable.identity(count: 2), .identity(count: 3), Self.table(4, 9, .cubic(a: -0.75))]
        let row = Self.both(input, shape: [2, 3, 4], tables: lastOnly)
        for (a, b) in zip(row.fast, row.reference) { #expect(abs(a - b) <= 1e-5) }
    }
}
