#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Rows per parallel task so a task covers about ``BroadcastLayout/chunkElementCount`` elements.
@inline(__always)
func rowsPerTask(rowLength: Int) -> Int { max(1, BroadcastLayout.chunkElementCount / max(1, rowLength)) }

/// Sum of `count` contiguous elements: 16 interleaved partial sums added in a fixed order.
@inline(__always)
func sumContiguous(_ source: UnsafePointer<Float>, _ count: Int) -> Float {
    var lanes = SIMD16<Float>()
    var index = 0
    while index + 16 <= count {
        lanes += loadVector(source + index)
        index += 16
    }
    var total = lanes.sum()
    while index < count {
        total += source[index]
        index += 1
    }
    return total
}

/// Mean and population variance of a row (two passes: mean, then squared deviations).
@inline(__always)
func meanAndVariance(_ source: UnsafePointer<Float>, _ count: Int) -> (mean: Float, variance: Float) {
    let mean = sumContiguous(source, count) / Float(count)
    var lanes = SIMD16<Float>()
    let vectorMean = SIMD16<Float>(repeating: mean)
    var index = 0
    while index + 16 <= count {
        let deviation = loadVector(source + index) - vectorMean
        lanes += deviation * deviation
        index += 16
    }
    var total = lanes.sum()
    while index < count {
        let deviation = source[index] - mean
        total += deviation * deviation
        index += 1
    }
    return (mean, total / Float(count))
}

/// Softmax (or log-softmax) of `input` viewed as `[outer, axisCount, inner]` along the middle axis,
/// computed as ONNX does: `exp(x − max) / Σ exp(x − max)`; log-softmax is
/// `(x − max) − log Σ exp(x − max)`.
public func softmaxFloat32(
    _ input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, outer: Int, axisCount: Int, inner: Int,
    logarithm: Bool, context: ComputeContext
) {
    if outer == 0 || axisCount == 0 || inner == 0 { return }
    let rowLength = axisCount * inner
    let perTask = rowsPerTask(rowLength: rowLength)
    /// A range of rows per task.
    struct Rows: ParallelRanges {
        let input: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>
        let axisCount: Int
        let inner: Int
        let logarithm: Bool
        let rowLength: Int

        func run(_ rows: Range<Int>) {
            for row in rows {
                let source = input + row * rowLength
                let destination = output + row * rowLength
                for j in 0..<inner {
                    softmaxLine(source + j, destination + j, axisCount, inner, logarithm)
                }
            }
        }
    }
    context.parallelFor(
        outer, blockSize: perTask,
        Rows(
            input: input, output: output, axisCount: axisCount, inner: inner, logarithm: logarithm,
            rowLength: rowLength))
}

/// One softmax line of `count` elements `stride` apart.
@inline(__always)
func softmaxLine(
    _ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, _ count: Int, _ stride: Int,
    _ logarithm: Bool
) {
    var maximum = -Float.infinity
    for k in 0..<count { maximum = nanPropagatingMax(maximum, source[k * stride]) }
    var sum: Float = 0
    if stride == 1 {
        for k in 0..<count { destination[k] = expf(source[k] - maximum) }
        sum = sumContiguous(destination, count)
    } else {
        for k in 0..<count {
            let value = expf(source[k * stride] - maximum)
            destination[k * stride] = value
            sum += value
        }
    }
    if logarithm {
        let logSum = logf(sum)
        for k in 0..<count { destination[k * stride] = (source[k * stride] - maximum) - logSum }
    } else {
        for k in 0..<count { destination[k * stride] /= sum }
    }
}

/// The plain reference for ``softmaxFloat32(_:output:outer:axisCount:inner:logarithm:context:)``,
/// accumulating in double precision.
public func softmaxFloat32Reference(
    _ input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, outer: Int, axisCount: Int, inner: Int,
    logarithm: Bool
) {
    for row in 0..<outer {
        for j in 0..<inner {
            let base = row * axisCount * inner + j
            var maximum = -Double.infinity
            for k in 0..<axisCount { maximum = max(maximum, Double(input[base + k * inner])) }
            var sum = 0.0
            for k in 0..<axisCount { sum += exp(Double(input[base + k * inner]) - maximum) }
            for k in 0..<axisCount {
                let shifted = Double(input[base + k * inner]) - maximum
                output[base + k * inner] = Float(logarithm ? shifted - log(sum) : exp(shifted) / sum)
            }
        }
    }
}

/// Layer normalization of `rowCount` rows of `rowLength` elements:
/// `y = (x − mean) / √(var + ε) · scale + bias`, with `scale` and `bias` of `rowLength` elements
/// (`bias` may be `nil`). When given, `meanOutput` and `inverseStdDevOutput` receive one value per row.
public func layerNormalizationFloat32(
    _ input: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    output: UnsafeMutablePointer<Float>, rowCount: Int, rowLength: Int, epsilon: Float,
    meanOutput: UnsafeMutablePointer<Float>? = nil, inverseStdDevOutput: UnsafeMutablePointer<Float>? = nil,
    context: ComputeContext
) {
    if rowCount == 0 { return }
    let perTask = rowsPerTask(rowLength: rowLength)
    /// A range of rows per task.
    struct Rows: ParallelRanges {
        let input: UnsafePointer<Float>
        let scale: UnsafePointer<Float>
        let bias: UnsafePointer<Float>?
        let output: UnsafeMutablePointer<Float>
        let rowLength: Int
        let epsilon: Float
        let meanOutput: UnsafeMutablePointer<Float>?
        let inverseStdDevOutput: UnsafeMutablePointer<Float>?

        func run(_ rows: Range<Int>) {
            for row in rows {
                let source = input + row * rowLength
                let destination = output + row * rowLength
                let (mean, variance) = meanAndVariance(source, rowLength)
                let inverse = 1 / (variance + epsilon).squareRoot()
                meanOutput?[row] = mean
                inverseStdDevOutput?[row] = inverse
                let vectorMean = SIMD16<Float>(repeating: mean)
                let vectorInverse = SIMD16<Float>(repeating: inverse)
                var index = 0
                while index + 16 <= rowLength {
                    var value = (loadVector(source + index) - vectorMean) * vectorInverse * loadVector(scale + index)
                    if let bias { value += loadVector(bias + index) }
                    storeVector(value, destination + index)
                    index += 16
                }
                while index < rowLength {
                    var value = (source[index] - mean) * inverse * scale[index]
                    if let bias { value += bias[index] }
                    destination[index] = value
                    index += 1
                }
            }
        }
    }
    context.parallelFor(
        rowCount, blockSize: perTask,
        Rows(
            input: input, scale: scale, bias: bias, output: output, rowLength: rowLength,
            epsilon: epsilon, meanOutput: meanOutput, inverseStdDevOutput: inverseStdDevOutput))
}

/// `y[n, c, s] = x[n, c, s] · scale[c] + shift[c]` over `[batch, channels, spatial]`: inference
/// batch normalization once its statistics are folded into `scale` and `shift`.
public func channelAffineFloat32(
    _ input: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
    output: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int, context: ComputeContext
) {
    let rows = batch * channels
    if rows == 0 || spatial == 0 { return }
    let perTask = rowsPerTask(rowLength: spatial)
    /// A range of rows per task.
    struct Rows: ParallelRanges {
        let input: UnsafePointer<Float>
        let scale: UnsafePointer<Float>
        let shift: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>
        let channels: Int
        let spatial: Int

        func run(_ range: Range<Int>) {
            for row in range {
                let channel = row % channels
                let scalarScale = scale[channel]
                let scalarShift = shift[channel]
                let vectorScale = SIMD16<Float>(repeating: scalarScale)
                let vectorShift = SIMD16<Float>(repeating: scalarShift)
                let source = input + row * spatial
                let destination = output + row * spatial
                var index = 0
                while index + 16 <= spatial {
                    storeVector(loadVector(source + index) * vectorScale + vectorShift, destination + index)
                    index += 16
                }
                while index < spatial {
                    destination[index] = source[index] * scalarScale + scalarShift
                    index += 1
                }
            }
        }
    }
    context.parallelFor(
        rows, blockSize: perTask,
        Rows(
            input: input, scale: scale, shift: shift, output: output, channels: channels, spatial: spatial))
}

/// Instance normalization over `[batch, channels, spatial]`: each `(n, c)` row is normalized by
/// its own mean and population variance, then scaled by `scale[c]` and shifted by `bias[c]`.
public func instanceNormalizationFloat32(
    _ input: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    output: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int, epsilon: Float,
    context: ComputeContext
) {
    let rows = batch * channels
    if rows == 0 || spatial == 0 { return }
    let perTask = rowsPerTask(rowLength: spatial)
    /// A range of rows per task.
    struct Rows: ParallelRanges {
        let input: UnsafePointer<Float>
        let scale: UnsafePointer<Float>
        let bias: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>
        let channels: Int
        let spatial: Int
        let epsilon: Float

        func run(_ range: Range<Int>) {
            for row in range {
                let channel = row % channels
                let source = input + row * spatial
                let (mean, variance) = meanAndVariance(source, spatial)
                let factor = scale[channel] / (variance + epsilon).squareRoot()
                let offset = bias[channel] - mean * factor
                let destination = output + row * spatial
                for index in 0..<spatial { destination[index] = source[index] * factor + offset }
            }
        }
    }
    context.parallelFor(
        rows, blockSize: perTask,
        Rows(
            input: input, scale: scale, bias: bias, output: output, channels: channels, spatial: spatial,
            epsilon: epsilon))
}
