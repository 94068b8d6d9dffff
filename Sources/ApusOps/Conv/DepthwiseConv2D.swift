/// How the depthwise kernel lays out one padded input channel in scratch memory.
///
/// The padded plane is split by column phase: with stride `s`, phase `p` holds the padded columns
/// `p, p + s, p + 2s, …`. The input column read by output `x` for kernel column `kx` is then
/// `phase[(kx·d) % s][x + (kx·d) / s]`, contiguous in `x`, so every stride and dilation
/// vectorizes over output columns with plain loads and no boundary checks.
struct DepthwiseLayout {
    /// The convolution.
    let geometry: Conv2DGeometry
    /// Padded rows stored (only those some output reads).
    let rows: Int
    /// Columns of one phase row.
    let phaseWidth: Int
    /// Column phases (the horizontal stride).
    let phases: Int

    init(geometry g: Conv2DGeometry) {
        geometry = g
        rows = max(0, (g.outputHeight - 1) * g.strideHeight + (g.kernelHeight - 1) * g.dilationHeight + 1)
        let columns = max(0, (g.outputWidth - 1) * g.strideWidth + (g.kernelWidth - 1) * g.dilationWidth + 1)
        phases = g.strideWidth
        phaseWidth = (columns + phases - 1) / phases
    }

    /// Elements between the starts of two padded rows.
    var rowStride: Int { phases * phaseWidth }
    /// Scratch elements for one channel: the plane, then one vector of slack that the last
    /// (partial) vector of the last row may read.
    var planeElementCount: Int { rows * rowStride + 16 }
}

/// The depthwise convolution kernel (one filter per channel), SIMD over output columns.
enum DepthwiseConv2D {
    /// Convolves one channel: pads and phase-splits the input plane into `scratch`, then computes
    /// every output row sixteen columns at a time with bias, residual and activation applied in
    /// registers. A row's last vector may be partial: it reads past the row into the padded plane
    /// (or the slack after it) and stores only the columns that exist, so narrow feature maps
    /// (14 or 7 columns) run vectorized too.
    static func runChannel(
        layout: DepthwiseLayout, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: Float,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let g = layout.geometry
        fillPlane(layout: layout, input: input, into: scratch)
        switch (g.kernelHeight, g.kernelWidth) {
        case (3, 3):
            rows(
                kH: 3, kW: 3, layout: layout, plane: scratch, weights: weights, bias: bias, residual: residual,
                output: output, activation: activation)
        case (5, 5):
            rows(
                kH: 5, kW: 5, layout: layout, plane: scratch, weights: weights, bias: bias, residual: residual,
                output: output, activation: activation)
        default:
            rows(
                kH: g.kernelHeight, kW: g.kernelWidth, layout: layout, plane: scratch, weights: weights, bias: bias,
                residual: residual, output: output, activation: activation)
        }
    }

    /// The output rows of one channel; inlined with constant `kH`, `kW` for the common kernels so
    /// that the tap loops unroll.
    @inline(__always)
    private static func rows(
        kH: Int, kW: Int, layout: DepthwiseLayout, plane: UnsafeMutablePointer<Float>, weights: UnsafePointer<Float>,
        bias: Float, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: FusedActivation
    ) {
        let g = layout.geometry
        let outH = g.outputHeight
        let outW = g.outputWidth
        let rowStride = layout.rowStride
        let verticalStep = g.dilationHeight * rowStride
        for oy in 0..<outH {
            let outRow = output + oy * outW
            let residualRow = residual.map { $0 + oy * outW }
            let firstInputRow = UnsafePointer(plane) + oy * g.strideHeight * rowStride
            var x = 0
            while x < outW {
                let count = min(16, outW - x)
                var acc = SIMD16<Float>(repeating: bias)
                for ky in 0..<kH {
                    let inputRow = firstInputRow + ky * verticalStep + x
                    let kernelRow = weights + ky * kW
                    for kx in 0..<kW {
                        let v = UnsafeRawPointer(inputRow + columnOffset(kx, g, layout)).loadUnaligned(
                            as: SIMD16<Float>.self)
                        acc += kernelRow[kx] * v
                    }
                }
                if count == 16 {
                    if let residualRow {
                        acc += UnsafeRawPointer(residualRow + x).loadUnaligned(as: SIMD16<Float>.self)
                    }
                    UnsafeMutableRawPointer(outRow + x).storeBytes(of: activation.apply(acc), as: SIMD16<Float>.self)
                } else {
                    if let residualRow {
                        var r = SIMD16<Float>()
                        for lane in 0..<count { r[lane] = residualRow[x + lane] }
                        acc += r
                    }
                    let result = activation.apply(acc)
                    for lane in 0..<count { outRow[x + lane] = result[lane] }
                }
                x += 16
            }
        }
    }

    /// The scalar reference of ``runChannel(layout:input:weights:bias:residual:output:activation:scratch:)``
    /// (through the same padded plane).
    static func runChannelReference(
        layout: DepthwiseLayout, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: Float,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let g = layout.geometry
        fillPlane(layout: layout, input: input, into: scratch)
        for oy in 0..<g.outputHeight {
            for x in 0..<g.outputWidth {
                var acc = bias
                for ky in 0..<g.kernelHeight {
                    let inputRow = scratch + (oy * g.strideHeight + ky * g.dilationHeight) * layout.rowStride + x
                    for kx in 0..<g.kernelWidth {
                        acc += weights[ky * g.kernelWidth + kx] * inputRow[columnOffset(kx, g, layout)]
                    }
                }
                if let residual { acc += residual[oy * g.outputWidth + x] }
                output[oy * g.outputWidth + x] = activation.apply(acc)
            }
        }
    }

    @inline(__always)
    private static func columnOffset(_ kx: Int, _ g: Conv2DGeometry, _ layout: DepthwiseLayout) -> Int {
        let offset = kx * g.dilationWidth
        return (offset % layout.phases) * layout.phaseWidth + offset / layout.phases
    }

    /// Writes the zero-padded, phase-split input plane.
    static func fillPlane(layout: DepthwiseLayout, input: UnsafePointer<Float>, into plane: UnsafeMutablePointer<Float>)
    {
        let g = layout.geometry
        let inH = g.inputHeight
        let inW = g.inputWidth
        let phases = layout.phases
        let phaseWidth = layout.phaseWidth
        for row in 0..<layout.rows {
            let dest = plane + row * layout.rowStride
            let iy = row - g.padTop
            if iy < 0 || iy >= inH {
                dest.update(repeating: 0, count: layout.rowStride)
                continue
            }
            let source = input + iy * inW
            if phases == 1 {
                // Padded columns: [0, padLeft) zero, then the input row, then zeros to phaseWidth.
                let left = min(g.padLeft, phaseWidth)
                dest.update(repeating: 0, count: left)
                let copied = max(0, min(inW, phaseWidth - left))
                (dest + left).update(from: source, count: copied)
                let filled = left + copied
                if filled < phaseWidth { (dest + filled).update(repeating: 0, count: phaseWidth - filled) }
            } else {
                for phase in 0..<phases {
                    let phaseRow = dest + phase * phaseWidth
                    // Column j of this phase reads input column j·s + phase − padLeft: inside the
                    // row for lo ..< hi.
                    let first = phase - g.padLeft
                    let lo = min(phaseWidth, first >= 0 ? 0 : (-first + phases - 1) / phases)
                    let hi = max(lo, min(phaseWidth, inW - 1 - first < 0 ? 0 : (inW - 1 - first) / phases + 1))
                    phaseRow.update(repeating: 0, count: lo)
                    var ix = lo * phases + first
                    for j in lo..<hi {
                        phaseRow[j] = source[ix]
                        ix += phases
                    }
                    (phaseRow + hi).update(repeating: 0, count: phaseWidth - hi)
                }
            }
        }
    }
}
