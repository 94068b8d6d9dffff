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
    /// Scratch elements for one channel.
    var planeElementCount: Int { rows * rowStride }
}

/// The depthwise convolution kernel (one filter per channel), SIMD over output columns.
enum DepthwiseConv2D {
    /// Convolves one channel: pads and phase-splits the input plane into `scratch`, then computes
    /// every output row sixteen columns at a time with bias, residual and activation applied in
    /// registers.
    static func runChannel(
        layout: DepthwiseLayout, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: Float,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let g = layout.geometry
        fillPlane(layout: layout, input: input, into: scratch)
        let outH = g.outputHeight
        let outW = g.outputWidth
        let kH = g.kernelHeight
        let kW = g.kernelWidth
        let rowStride = layout.rowStride
        let phaseWidth = layout.phaseWidth
        let phases = layout.phases
        // Per kernel column: offset of its first input inside a padded row.
        let maxTaps = 16
        var columnOffsets = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let fitsTable = kW <= maxTaps
        if fitsTable {
            withUnsafeMutableBytes(of: &columnOffsets) { raw in
                let table = raw.bindMemory(to: Int.self)
                for kx in 0..<kW {
                    let offset = kx * g.dilationWidth
                    table[kx] = (offset % phases) * phaseWidth + offset / phases
                }
            }
        }
        withUnsafeBytes(of: &columnOffsets) { raw in
            let table = raw.bindMemory(to: Int.self)
            for oy in 0..<outH {
                let outRow = output + oy * outW
                let residualRow = residual.map { $0 + oy * outW }
                let firstInputRow = UnsafePointer(scratch) + oy * g.strideHeight * rowStride
                var x = 0
                while x + 16 <= outW {
                    var acc = SIMD16<Float>(repeating: bias)
                    for ky in 0..<kH {
                        let inputRow = firstInputRow + ky * g.dilationHeight * rowStride + x
                        let kernelRow = weights + ky * kW
                        for kx in 0..<kW {
                            let offset = fitsTable ? table[kx] : columnOffset(kx, g, layout)
                            let v = UnsafeRawPointer(inputRow + offset).loadUnaligned(as: SIMD16<Float>.self)
                            acc += kernelRow[kx] * v
                        }
                    }
                    if let residualRow {
                        acc += UnsafeRawPointer(residualRow + x).loadUnaligned(as: SIMD16<Float>.self)
                    }
                    UnsafeMutableRawPointer(outRow + x).storeBytes(
                        of: activation.apply(acc), as: SIMD16<Float>.self)
                    x += 16
                }
                while x < outW {
                    var acc = bias
                    for ky in 0..<kH {
                        let inputRow = firstInputRow + ky * g.dilationHeight * rowStride + x
                        let kernelRow = weights + ky * kW
                        for kx in 0..<kW {
                            let offset = fitsTable ? table[kx] : columnOffset(kx, g, layout)
                            acc += kernelRow[kx] * inputRow[offset]
                        }
                    }
                    if let residualRow { acc += residualRow[x] }
                    outRow[x] = activation.apply(acc)
                    x += 1
                }
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
                    for j in 0..<phaseWidth {
                        let ix = j * phases + phase - g.padLeft
                        phaseRow[j] = ix >= 0 && ix < inW ? source[ix] : 0
                    }
                }
            }
        }
    }
}
