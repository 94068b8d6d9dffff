/// Resizing of float32 tensors by separable interpolation, with ONNX `Resize` semantics.
///
/// Every resized axis gets an ``ResizeAxisTable``: for each output position, the input indices
/// it reads (already clamped, which is ONNX's edge padding) and their weights. The kernels then
/// compute each output element as the weighted sum over the product of the axes' taps. ONNX's
/// reference applies the axes one after another in float64; the sums here are float32 in another
/// order, which agrees within float32 rounding.
public enum Resize {
    /// How a source coordinate becomes weights.
    public enum Mode: Sendable, Hashable {
        /// Nearest neighbour with the given rounding.
        case nearest(NearestRounding)
        /// Linear interpolation (2 taps; wider with antialiasing when downscaling).
        case linear
        /// Cubic convolution with coefficient `a` (4 taps; wider with antialiasing).
        case cubic(a: Double)
    }

    /// ONNX `nearest_mode`, plus the rule `Resize`-10 and `Upsample` use.
    public enum NearestRounding: Sendable, Hashable {
        /// Halves go down.
        case roundPreferFloor
        /// Halves go up.
        case roundPreferCeil
        /// Always down.
        case floor
        /// Always up.
        case ceil
        /// `Resize`-10: truncation when upscaling, ceiling when downscaling (ONNX Runtime's rule).
        case simple
    }

    /// ONNX `coordinate_transformation_mode`: how an output index maps to an input coordinate.
    public enum CoordinateTransformation: Sendable, Hashable {
        /// `(y + 0.5) / scale − 0.5`.
        case halfPixel
        /// Like `halfPixel` but centred when the output size was rounded.
        case halfPixelSymmetric
        /// `halfPixel`, except −0.5 when the output has length 1.
        case pytorchHalfPixel
        /// `y · (in − 1) / (out − 1)`.
        case alignCorners
        /// `y / scale`.
        case asymmetric
        /// `(y + 0.5) / scale` (`tf_half_pixel_for_nn`, `Resize`-11 only).
        case tfHalfPixelForNearest
        /// Crop `[start, end]` (fractions of the input) then resize; outside reads `extrapolation_value`.
        case tfCropAndResize(start: Double, end: Double)
    }

    /// The taps of one axis.
    public struct AxisTable: Sendable, Hashable {
        /// Output length of the axis.
        public var outputCount: Int
        /// Taps per output position.
        public var tapCount: Int
        /// `outputCount · tapCount` input indices, each in `0..<inputCount`.
        public var indices: [Int]
        /// `outputCount · tapCount` weights.
        public var weights: [Float]
        /// Output positions that read `extrapolation_value` instead (`tfCropAndResize`); empty otherwise.
        public var extrapolated: [Bool]

        /// The table of an axis left as it is: one tap of weight 1 at the same index.
        public static func identity(count: Int) -> AxisTable {
            AxisTable(
                outputCount: count, tapCount: 1, indices: Array(0..<count), weights: Array(repeating: 1, count: count),
                extrapolated: [])
        }

        /// Whether the table copies the axis unchanged.
        public var isIdentity: Bool {
            tapCount == 1 && extrapolated.isEmpty && weights.allSatisfy { $0 == 1 }
                && indices.elementsEqual(0..<outputCount)
        }
    }

    /// The source coordinate of output index `y` (ONNX's `_compute_x_ori`), in float64 like the reference.
    static func sourceCoordinate(
        _ y: Int, transformation: CoordinateTransformation, scale: Double, inputCount: Int, outputCount: Int
    ) -> Double {
        let y = Double(y)
        let input = Double(inputCount)
        let outputWidth = scale * input
        switch transformation {
        case .halfPixel:
            return (y + 0.5) / scale - 0.5
        case .halfPixelSymmetric:
            let adjustment = Double(outputCount) / outputWidth
            let offset = input / 2 * (1 - adjustment)
            return offset + (y + 0.5) / scale - 0.5
        case .pytorchHalfPixel:
            return outputWidth == 1 ? -0.5 : (y + 0.5) / scale - 0.5
        case .alignCorners:
            return outputWidth == 1 ? 0 : y * (input - 1) / (outputWidth - 1)
        case .asymmetric:
            return y / scale
        case .tfHalfPixelForNearest:
            return (y + 0.5) / scale
        case .tfCropAndResize(let start, let end):
            let base =
                outputWidth == 1 ? (end - start) * (input - 1) / 2 : y * (end - start) * (input - 1) / (outputWidth - 1)
            return base + start * (input - 1)
        }
    }

    /// The weights for fractional position `ratio` in `(0, 1]` (1 when the coordinate is an integer).
    static func coefficients(ratio: Double, scale: Double, mode: Mode, antialias: Bool) -> [Double] {
        switch mode {
        case .nearest(let rounding):
            if ratio == 1 { return [0, 1] }
            switch rounding {
            case .roundPreferFloor: return ratio <= 0.5 ? [1, 0] : [0, 1]
            case .roundPreferCeil: return ratio < 0.5 ? [1, 0] : [0, 1]
            case .floor: return [1, 0]
            case .ceil: return [0, 1]
            case .simple: return scale < 1 ? [0, 1] : [1, 0]
            }
        case .linear:
            guard antialias else { return [1 - ratio, ratio] }
            let scale = Swift.min(scale, 1)
            let start = Int((-1 / scale).rounded(.down)) + 1
            let footprint = 2 - 2 * start
            let raw = (start..<(start + footprint)).map {
                Swift.max(0, Swift.min(1, 1 - abs((Double($0) - ratio) * scale)))
            }
            let sum = raw.reduce(0, +)
            return raw.map { $0 / sum }
        case .cubic(let a):
            guard antialias else {
                let r1 = ratio + 1
                let s = 1 - ratio
                let s1 = s + 1
                return [
                    ((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a,
                    ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
                    ((a + 2) * s - (a + 3)) * s * s + 1,
                    ((a * s1 - 5 * a) * s1 + 8 * a) * s1 - 4 * a,
                ]
            }
            let scale = Swift.min(scale, 1)
            func weight(_ x: Double) -> Double {
                let x = abs(x)
                let x2 = x * x
                let x3 = x * x2
                if x <= 1 { return (a + 2) * x3 - (a + 3) * x2 + 1 }
                if x < 2 { return a * x3 - 5 * a * x2 + 8 * a * x - 4 * a }
                return 0
            }
            let start = Int((-2 / scale).rounded(.down)) + 1
            let raw = (start..<(2 - start)).map { weight(scale * (Double($0) - ratio)) }
            let sum = raw.reduce(0, +)
            return raw.map { $0 / sum }
        }
    }

    /// The taps of one axis, following ONNX's reference `_interpolate_1d_along_axis`.
    ///
    /// - Parameters:
    ///   - inputCount: Input length of the axis (at least 1).
    ///   - outputCount: Output length of the axis.
    ///   - scale: Output/input scale of the axis, as ONNX uses it in the coordinate formulas.
    ///   - excludeOutside: Zero the weights of taps outside the input and renormalize.
    ///   - antialias: Widen linear and cubic filters by 1/scale when downscaling.
    public static func axisTable(
        inputCount: Int, outputCount: Int, scale: Double, mode: Mode, transformation: CoordinateTransformation,
        excludeOutside: Bool = false, antialias: Bool = false
    ) -> AxisTable {
        var tapCount = 0
        var indices: [Int] = []
        var weights: [Float] = []
        var extrapolated: [Bool] = []
        if case .tfCropAndResize = transformation { extrapolated = Array(repeating: false, count: outputCount) }
        for y in 0..<outputCount {
            let x = sourceCoordinate(
                y, transformation: transformation, scale: scale, inputCount: inputCount, outputCount: outputCount)
            if !extrapolated.isEmpty, x < 0 || x > Double(inputCount - 1) { extrapolated[y] = true }
            let floorX = x.rounded(.down)
            let ratio = x == floorX ? 1 : x - floorX
            var coefficients = coefficients(ratio: ratio, scale: scale, mode: mode, antialias: antialias)
            let n = coefficients.count
            tapCount = n
            // The n neighbours nearest to x in edge-padded coordinates, ties going to the smaller index.
            let pad = (n + 1) / 2
            let padded = x + Double(pad)
            let p = padded.rounded(.down)
            let fraction = padded - p
            let offset: Int
            if n % 2 == 0 {
                offset = fraction == 0 ? -(n / 2) : -(n / 2) + 1
            } else {
                offset = fraction <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1
            }
            let start = Int(p) + offset - pad
            if excludeOutside {
                for k in 0..<n where start + k < 0 || start + k >= inputCount { coefficients[k] = 0 }
                var sum = coefficients.reduce(0, +)
                if sum == 0 { sum = 1 }
                coefficients = coefficients.map { $0 / sum }
            }
            for k in 0..<n {
                indices.append(Swift.min(Swift.max(start + k, 0), inputCount - 1))
                weights.append(Float(coefficients[k]))
            }
        }
        if outputCount == 0 { tapCount = 1 }
        // Nearest tables keep only the tap of weight 1, so the kernel reads one element.
        if case .nearest = mode, tapCount == 2,
            (0..<outputCount).allSatisfy({ y in
                (weights[2 * y] == 1 && weights[2 * y + 1] == 0) || (weights[2 * y] == 0 && weights[2 * y + 1] == 1)
            })
        {
            var single: [Int] = []
            for y in 0..<outputCount { single.append(weights[2 * y] == 1 ? indices[2 * y] : indices[2 * y + 1]) }
            return AxisTable(
                outputCount: outputCount, tapCount: 1, indices: single,
                weights: Array(repeating: 1, count: outputCount), extrapolated: extrapolated)
        }
        return AxisTable(
            outputCount: outputCount, tapCount: tapCount, indices: indices, weights: weights,
            extrapolated: extrapolated)
    }

    /// Plain reference: every output element as the full weighted sum over all axes' taps, in float64.
    ///
    /// - Parameters:
    ///   - inputShape: The input dimensions; `tables[i]` maps axis `i` to the output.
    ///   - extrapolationValue: What extrapolated positions read.
    public static func resizeReference(
        input: UnsafePointer<Float>, inputShape: [Int], output: UnsafeMutablePointer<Float>, tables: [AxisTable],
        extrapolationValue: Float = 0
    ) {
        let rank = inputShape.count
        let outputShape = tables.map(\.outputCount)
        let count = outputShape.reduce(1, *)
        var inputStrides = Array(repeating: 1, count: rank)
        for axis in stride(from: rank - 2, through: 0, by: -1) {
            inputStrides[axis] = inputStrides[axis + 1] * inputShape[axis + 1]
        }
        var coordinate = Array(repeating: 0, count: rank)
        for position in 0..<count {
            var rest = position
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                coordinate[axis] = rest % outputShape[axis]
                rest /= outputShape[axis]
            }
            if (0..<rank).contains(where: { axis in
                !tables[axis].extrapolated.isEmpty && tables[axis].extrapolated[coordinate[axis]]
            }) {
                output[position] = extrapolationValue
                continue
            }
            func sum(axis: Int, offset: Int) -> Double {
                if axis == rank { return Double(input[offset]) }
                let table = tables[axis]
                var total = 0.0
                for tap in 0..<table.tapCount {
                    let k = coordinate[axis] * table.tapCount + tap
                    total +=
                        Double(table.weights[k])
                        * sum(axis: axis + 1, offset: offset + table.indices[k] * inputStrides[axis])
                }
                return total
            }
            output[position] = Float(sum(axis: 0, offset: 0))
        }
    }

    /// Fast kernel: leading axes that the tables leave unchanged become independent planes, and
    /// the remaining axes (at most two) are resized row by row, in parallel over output rows.
    /// Falls back to ``resizeReference(input:inputShape:output:tables:extrapolationValue:)``
    /// when more than the last two axes are resized.
    public static func resize(
        input: UnsafePointer<Float>, inputShape: [Int], output: UnsafeMutablePointer<Float>, tables: [AxisTable],
        extrapolationValue: Float = 0, context: ComputeContext
    ) {
        let rank = inputShape.count
        var firstResized = 0
        while firstResized < rank, tables[firstResized].isIdentity { firstResized += 1 }
        guard rank - firstResized <= 2 else {
            resizeReference(
                input: input, inputShape: inputShape, output: output, tables: tables,
                extrapolationValue: extrapolationValue)
            return
        }
        let planes = inputShape[..<firstResized].reduce(1, *)
        let rowTable: AxisTable
        let columnTable: AxisTable
        let inputHeight: Int
        let inputWidth: Int
        switch rank - firstResized {
        case 0:
            rowTable = .identity(count: 1)
            columnTable = .identity(count: 1)
            (inputHeight, inputWidth) = (1, 1)
        case 1:
            rowTable = .identity(count: 1)
            columnTable = tables[rank - 1]
            (inputHeight, inputWidth) = (1, inputShape[rank - 1])
        default:
            rowTable = tables[rank - 2]
            columnTable = tables[rank - 1]
            (inputHeight, inputWidth) = (inputShape[rank - 2], inputShape[rank - 1])
        }
        let outputHeight = rowTable.outputCount
        let outputWidth = columnTable.outputCount
        let inputPlane = inputHeight * inputWidth
        let outputPlane = outputHeight * outputWidth
        // A task is a band of output rows of one plane: sized by the problem only.
        let rowsPerTask = Swift.max(
            1, Swift.min(outputHeight, 16384 / Swift.max(1, outputWidth * columnTable.tapCount)))
        let bands = (outputHeight + rowsPerTask - 1) / rowsPerTask
        /// A band of output rows of one plane per task.
        struct Bands: ParallelTasks {
            let input: UnsafePointer<Float>
            let output: UnsafeMutablePointer<Float>
            let inputPlane: Int
            let outputPlane: Int
            let inputWidth: Int
            let outputHeight: Int
            let outputWidth: Int
            let bands: Int
            let rowsPerTask: Int
            let rowTable: AxisTable
            let columnTable: AxisTable
            let rowIndices: UnsafeBufferPointer<Int>
            let rowWeights: UnsafeBufferPointer<Float>
            let columnIndices: UnsafeBufferPointer<Int>
            let columnWeights: UnsafeBufferPointer<Float>
            let extrapolationValue: Float

            func run(_ task: Int) {
                let plane = task / bands
                let band = task % bands
                let source = input + plane * inputPlane
                let destination = output + plane * outputPlane
                for y in (band * rowsPerTask)..<Swift.min(outputHeight, (band + 1) * rowsPerTask) {
                    let row = destination + y * outputWidth
                    if !rowTable.extrapolated.isEmpty, rowTable.extrapolated[y] {
                        row.update(repeating: extrapolationValue, count: outputWidth)
                        continue
                    }
                    Resize.resizeRow(
                        source: source, inputWidth: inputWidth, row: row, y: y, rowTable: rowTable,
                        rowIndices: rowIndices, rowWeights: rowWeights, columnTable: columnTable,
                        columnIndices: columnIndices, columnWeights: columnWeights,
                        extrapolationValue: extrapolationValue)
                }
            }
        }
        rowTable.indices.withUnsafeBufferPointer { rowIndices in
            rowTable.weights.withUnsafeBufferPointer { rowWeights in
                columnTable.indices.withUnsafeBufferPointer { columnIndices in
                    columnTable.weights.withUnsafeBufferPointer { columnWeights in
                        context.parallelFor(
                            planes * bands,
                            Bands(
                                input: input, output: output, inputPlane: inputPlane, outputPlane: outputPlane,
                                inputWidth: inputWidth, outputHeight: outputHeight, outputWidth: outputWidth,
                                bands: bands, rowsPerTask: rowsPerTask, rowTable: rowTable, columnTable: columnTable,
                                rowIndices: rowIndices, rowWeights: rowWeights, columnIndices: columnIndices,
                                columnWeights: columnWeights, extrapolationValue: extrapolationValue))
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func resizeRow(
        source: UnsafePointer<Float>, inputWidth: Int, row: UnsafeMutablePointer<Float>, y: Int,
        rowTable: AxisTable, rowIndices: UnsafeBufferPointer<Int>, rowWeights: UnsafeBufferPointer<Float>,
        columnTable: AxisTable, columnIndices: UnsafeBufferPointer<Int>, columnWeights: UnsafeBufferPointer<Float>,
        extrapolationValue: Float
    ) {
        let rowTaps = rowTable.tapCount
        let columnTaps = columnTable.tapCount
        let outputWidth = columnTable.outputCount
        let extrapolatedColumns = !columnTable.extrapolated.isEmpty
        if rowTaps == 1, columnTaps == 1 {
            let line = source + rowIndices[y] * inputWidth
            for x in 0..<outputWidth { row[x] = line[columnIndices[x]] }
        } else {
            for x in 0..<outputWidth {
                var total: Float = 0
                for i in 0..<rowTaps {
                    let line = source + rowIndices[y * rowTaps + i] * inputWidth
                    var partial: Float = 0
                    for j in 0..<columnTaps {
                        partial += columnWeights[x * columnTaps + j] * line[columnIndices[x * columnTaps + j]]
                    }
                    total += rowWeights[y * rowTaps + i] * partial
                }
                row[x] = total
            }
        }
        if extrapolatedColumns {
            for x in 0..<outputWidth where columnTable.extrapolated[x] { row[x] = extrapolationValue }
        }
    }
}
