/// The plain direct convolution every fast path is tested against: seven nested loops, no tiling.
public enum Conv2DReference {
    /// Computes `output = activation(conv(input, weights) + bias + residual)`.
    ///
    /// - Parameters:
    ///   - input: N × C × H × W.
    ///   - weights: M × (C / groups) × kH × kW.
    ///   - bias: M values, or `nil`.
    ///   - residual: the same shape as `output`, or `nil`.
    ///   - output: N × M × outH × outW.
    public static func run(
        geometry g: Conv2DGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: FusedActivation = .none
    ) {
        let outH = g.outputHeight
        let outW = g.outputWidth
        let cPerGroup = g.inputChannelsPerGroup
        let mPerGroup = g.outputChannelsPerGroup
        for n in 0..<g.batch {
            for m in 0..<g.outputChannels {
                let group = m / mPerGroup
                for oy in 0..<outH {
                    for ox in 0..<outW {
                        var sum: Float = 0
                        for c in 0..<cPerGroup {
                            let inputChannel = group * cPerGroup + c
                            for ky in 0..<g.kernelHeight {
                                let iy = oy * g.strideHeight - g.padTop + ky * g.dilationHeight
                                if iy < 0 || iy >= g.inputHeight { continue }
                                for kx in 0..<g.kernelWidth {
                                    let ix = ox * g.strideWidth - g.padLeft + kx * g.dilationWidth
                                    if ix < 0 || ix >= g.inputWidth { continue }
                                    let x = input[
                                        ((n * g.inputChannels + inputChannel) * g.inputHeight + iy) * g.inputWidth + ix]
                                    let w = weights[((m * cPerGroup + c) * g.kernelHeight + ky) * g.kernelWidth + kx]
                                    sum += x * w
                                }
                            }
                        }
                        let index = ((n * g.outputChannels + m) * outH + oy) * outW + ox
                        if let bias { sum += bias[m] }
                        if let residual { sum += residual[index] }
                        output[index] = activation.apply(sum)
                    }
                }
            }
        }
    }
}
