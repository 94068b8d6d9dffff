import CApusKernels

#if canImport(Glibc)
    import Glibc
#endif

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
    /// Scratch elements for one channel: the plane, then `phases` more rows that the second
    /// output row of a pair reads when the last output row is unpaired (its results are dropped),
    /// then one vector of slack that the last (partial) vector of the last row may read.
    var planeElementCount: Int { (rows + phases) * rowStride + 16 }
}

/// A square kernel size and stride as a type: generic code specialized for it sees constants
/// (Swift has no integer generic parameters, and an `@inline(__always)` function with constant
/// arguments may still be outlined with the arguments left variable).
protocol DepthwiseShape {
    /// Kernel height and width.
    static var kernelSize: Int { get }
    /// Vertical and horizontal stride.
    static var stride: Int { get }
}

/// 3 × 3, stride 1.
enum Kernel3x3Stride1: DepthwiseShape {
    static var kernelSize: Int { 3 }
    static var stride: Int { 1 }
}

/// 3 × 3, stride 2.
enum Kernel3x3Stride2: DepthwiseShape {
    static var kernelSize: Int { 3 }
    static var stride: Int { 2 }
}

/// 5 × 5, stride 1.
enum Kernel5x5Stride1: DepthwiseShape {
    static var kernelSize: Int { 5 }
    static var stride: Int { 1 }
}

/// 5 × 5, stride 2.
enum Kernel5x5Stride2: DepthwiseShape {
    static var kernelSize: Int { 5 }
    static var stride: Int { 2 }
}

/// The depthwise convolution kernel (one filter per channel), SIMD over output columns.
enum DepthwiseConv2D {
    /// Zeroes a scratch plane once before a run of
    /// ``runChannel(layout:input:weights:bias:residual:output:activation:scratch:avx2:)`` calls on
    /// it: the padding sits at the same places for every channel, so the channels then rewrite
    /// only the input's own elements.
    static func clearPlane(layout: DepthwiseLayout, scratch: UnsafeMutablePointer<Float>) {
        scratch.update(repeating: 0, count: layout.planeElementCount)
    }

    /// Convolves one channel: copies the input plane into the phase-split `scratch` (whose padding
    /// ``clearPlane(layout:scratch:)`` zeroed), then computes the output rows sixteen columns at a
    /// time with bias, residual and activation applied in registers. A row's last vector may be
    /// partial: it reads past the row into the padded plane (or the slack after it) and stores
    /// only the columns that exist, so narrow feature maps (14 or 7 columns) run vectorized too.
    static func runChannel(
        layout: DepthwiseLayout, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: Float,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        scratch: UnsafeMutablePointer<Float>, avx2: Bool = usesAVX2Rows
    ) {
        if avx2, let rows = AVX2Rows(layout: layout, activation: activation) {
            rows.run(
                input: input, plane: scratch, weights: weights, bias: bias, residual: residual, output: output)
            return
        }
        switch activation {
        case .none:
            kernel(layout, input, scratch, weights, bias, residual, output, IdentityActivation())
        case .relu:
            kernel(layout, input, scratch, weights, bias, residual, output, ReluActivation())
        case .clip(let low, let high):
            kernel(layout, input, scratch, weights, bias, residual, output, ClipActivation(low: low, high: high))
        case .silu where PackedGemm.hasAVX512, .sigmoid where PackedGemm.hasAVX512:
            // The SSE2 exp of the default build costs more than the convolution itself: convolve,
            // then apply the activation to the channel's plane, still in cache, with AVX-512.
            kernel(layout, input, scratch, weights, bias, residual, output, IdentityActivation())
            let g = layout.geometry
            PackedGemm.logistic(output, count: g.outputHeight * g.outputWidth, silu: activation == .silu)
        case .silu:
            kernel(layout, input, scratch, weights, bias, residual, output, SiLUActivation())
        default:
            kernel(layout, input, scratch, weights, bias, residual, output, GeneralActivation(activation: activation))
        }
    }

    /// Whether ``runChannel(layout:input:weights:bias:residual:output:activation:scratch:avx2:)`` takes
    /// the AVX2 row kernel (`apus_depthwise_plane_avx2`) where it applies: the CPU and OS support
    /// AVX2 and FMA, and `APUS_DEPTHWISE_AVX2` is not `0`.
    static let usesAVX2Rows: Bool = {
        if EnvironmentSwitch.isOff("APUS_DEPTHWISE_AVX2") { return false }
        return PackedGemm.cpuHasAVX2
    }()

    /// One channel through the AVX2 row kernel: square 3 × 3 or 5 × 5 kernels, stride 1 or 2, no
    /// dilation, and an activation the kernel applies in registers.
    struct AVX2Rows {
        let layout: DepthwiseLayout
        var geometry: apus_depthwise_plane_geometry
        let activation: Int32
        let low: Float
        let high: Float

        init?(layout: DepthwiseLayout, activation: FusedActivation) {
            let g = layout.geometry
            guard g.kernelHeight == g.kernelWidth, g.strideHeight == g.strideWidth, g.dilationHeight == 1,
                g.dilationWidth == 1
            else { return nil }
            let (code, low, high, rest) = PackedGemm.kernelActivation(activation)
            guard rest == .none else { return nil }
            geometry = apus_depthwise_plane_geometry(
                output_height: g.outputHeight, output_width: g.outputWidth, row_stride: layout.rowStride,
                phase_width: layout.phaseWidth, kernel: g.kernelHeight, stride: g.strideHeight)
            guard apus_depthwise_plane_supported(&geometry) != 0 else { return nil }
            self.layout = layout
            self.activation = code
            self.low = low
            self.high = high
        }

        /// Fills the plane eight output rows ahead of the kernel, so that large planes are read
        /// back from L1 (see `pairedRows`).
        func run(
            input: UnsafePointer<Float>, plane: UnsafeMutablePointer<Float>, weights: UnsafePointer<Float>,
            bias: Float, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>
        ) {
            var geometry = geometry
            let g = layout.geometry
            let stride = g.strideHeight
            var filled = 0
            var oy = 0
            while oy < g.outputHeight {
                let count = min(8, g.outputHeight - oy)
                let needed = min(layout.rows, (oy + count - 1) * stride + g.kernelHeight)
                if needed > filled {
                    copyInterior(layout: layout, input: input, into: plane, planeRows: filled..<needed)
                    filled = needed
                }
                apus_depthwise_plane_avx2(
                    &geometry, plane, oy, count, weights, bias, residual, output, activation, low, high)
                oy += count
            }
        }
    }

    /// Whether the depthwise path takes the AVX2 direct kernel (``AVX2Direct``) where it applies,
    /// instead of ``runChannel(layout:input:weights:bias:residual:output:activation:scratch:avx2:)``
    /// on a padded plane: the AVX2 row kernel is in use and `APUS_DEPTHWISE_DIRECT` is not `0`
    /// (`0` keeps the padded plane, to compare). ``Conv2DPlan`` chooses it once per run.
    static let usesAVX2Direct: Bool = {
        if EnvironmentSwitch.isOff("APUS_DEPTHWISE_DIRECT") { return false }
        return usesAVX2Rows
    }()

    /// One channel through the AVX2 direct kernel (`apus_depthwise_direct_avx2`): what ``AVX2Rows``
    /// takes, read straight from the input plane instead of a padded, phase-split copy (at stride 2
    /// the columns are deinterleaved in registers), with the same bits.
    struct AVX2Direct {
        var geometry: apus_depthwise_geometry
        let activation: Int32
        let low: Float
        let high: Float

        init?(geometry g: Conv2DGeometry, activation: FusedActivation) {
            let (code, low, high, rest) = PackedGemm.kernelActivation(activation)
            guard rest == .none, var geometry = apus_depthwise_geometry(square: g),
                apus_depthwise_direct_supported(&geometry) != 0
            else { return nil }
            self.geometry = geometry
            self.activation = code
            self.low = low
            self.high = high
        }

        /// Convolves the channel: every output row of `output` from `input`'s plane.
        func run(
            input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: Float, residual: UnsafePointer<Float>?,
            output: UnsafeMutablePointer<Float>
        ) {
            var geometry = geometry
            apus_depthwise_direct_avx2(
                &geometry, input, 0, geometry.output_height, weights, bias, residual, output, activation, low, high)
        }
    }

    /// Whether depthwise layers on small maps take the AVX2 channel kernel
    /// (``AVX2Channels``): the AVX2 row kernel is in use and `APUS_DEPTHWISE_CHANNELS` is not `0`.
    static let usesAVX2Channels: Bool = {
        if EnvironmentSwitch.isOff("APUS_DEPTHWISE_CHANNELS") { return false }
        return usesAVX2Rows
    }()

    /// Eight channels at a time through the AVX2 channel kernel (`apus_depthwise_channels_avx2`),
    /// for output maps of at most 14 × 14 (28 × 28 at stride 1), where a plane is a few vectors and
    /// the row kernel's per-channel plane copy and partial vectors dominate: eight planes become one
    /// padded map of eight-lane vectors (one lane per channel), so every lane of every load and fused
    /// multiply-add is an output. The same bits as ``AVX2Rows``.
    struct AVX2Channels {
        var geometry: apus_depthwise_geometry
        var epilogue: apus_gemm_epilogue

        /// Channels per group.
        static let groupSize = 8

        /// The kernel for `g` with `activation`, or `nil` when it does not take them: what
        /// ``AVX2Rows`` takes (3 × 3 or 5 × 5, stride 1 or 2, no dilation, an activation applied in
        /// registers), so that a plane has the same bits whichever of the two computes it (and a
        /// thread count, which moves the ranges' ends, changes nothing), on an output map the C
        /// kernel supports.
        init?(geometry g: Conv2DGeometry, activation: FusedActivation) {
            let (code, low, high, rest) = PackedGemm.kernelActivation(activation)
            guard g.kernelHeight == 3 || g.kernelHeight == 5, rest == .none,
                var geometry = apus_depthwise_geometry(square: g), apus_depthwise_channels_supported(&geometry) != 0
            else { return nil }
            self.geometry = geometry
            epilogue = apus_gemm_epilogue(
                bias: nil, residual: nil, residual_stride: 0, activation: code, low: low, high: high)
        }

        /// Convolves the planes `planes` ((image, channel) pairs, channel fastest; `channels` per
        /// image): every run of whole groups (eight channels from a multiple of 8, inside one
        /// image) through the channel kernel, and each other plane through `single`.
        func run(
            planes: Range<Int>, channels: Int, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
            bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
            single: (Int) -> Void
        ) {
            let size = Self.groupSize
            // The end of the last whole group of an image, counted from its first channel.
            let groupedChannels = channels / size * size
            var geometry = geometry
            var epilogue = epilogue
            epilogue.bias = bias
            epilogue.residual = residual
            var plane = planes.lowerBound
            while plane < planes.upperBound {
                let channel = plane % channels
                let count = min(planes.upperBound - plane, groupedChannels - channel) / size * size
                if channel % size == 0 && count > 0 {
                    apus_depthwise_channels_avx2(
                        &geometry, input, weights, channels, plane, count / size, output, &epilogue)
                    plane += count
                } else {
                    single(plane)
                    plane += 1
                }
            }
        }
    }

    /// The plane and output rows of one channel, specialized per activation and, for the common
    /// kernels, per kernel size and stride.
    private static func kernel<A: VectorActivation>(
        _ layout: DepthwiseLayout, _ input: UnsafePointer<Float>, _ plane: UnsafeMutablePointer<Float>,
        _ weights: UnsafePointer<Float>, _ bias: Float, _ residual: UnsafePointer<Float>?,
        _ output: UnsafeMutablePointer<Float>, _ activation: A
    ) {
        let g = layout.geometry
        let unitDilation = g.dilationHeight == 1 && g.dilationWidth == 1 && g.strideHeight == g.strideWidth
        if !unitDilation || g.strideWidth > 2 {
            copyInterior(layout: layout, input: input, into: plane)
        }
        switch (g.kernelHeight, g.kernelWidth, g.strideWidth, unitDilation) {
        case (3, 3, 1, true):
            pairedRows(
                Kernel3x3Stride1.self, layout: layout, input: input, plane: plane, weights: weights, bias: bias,
                residual: residual, output: output, activation: activation)
        case (3, 3, 2, true):
            pairedRows(
                Kernel3x3Stride2.self, layout: layout, input: input, plane: plane, weights: weights, bias: bias,
                residual: residual, output: output, activation: activation)
        case (5, 5, 1, true):
            pairedRows(
                Kernel5x5Stride1.self, layout: layout, input: input, plane: plane, weights: weights, bias: bias,
                residual: residual, output: output, activation: activation)
        case (5, 5, 2, true):
            pairedRows(
                Kernel5x5Stride2.self, layout: layout, input: input, plane: plane, weights: weights, bias: bias,
                residual: residual, output: output, activation: activation)
        default:
            if unitDilation && g.strideWidth <= 2 { copyInterior(layout: layout, input: input, into: plane) }
            rows(
                kH: g.kernelHeight, kW: g.kernelWidth, layout: layout, plane: plane, weights: weights, bias: bias,
                residual: residual, output: output, activation: activation)
        }
    }

    /// Two output rows per pass for square strides without dilation, specialized per
    /// ``DepthwiseShape`` so that the kernel size and stride are constants (the tap loops unroll):
    /// each loaded input vector feeds both rows it belongs to (with stride 1, `kH + 1` row loads
    /// per pair instead of `2·kH`). The plane is filled just ahead of the rows that read it, so
    /// that large planes (112 × 112) are read back from L1 rather than L2.
    ///
    /// Columns go from the last vector to the first, so that without a residual a row's partial
    /// last vector can be stored whole: the columns it spills into the next rows are rewritten
    /// later by those rows. Only a vector that would spill past the channel's plane (or one with a
    /// residual, whose spill would read the next rows' residual) stores lane by lane. Maps at most
    /// eight columns wide use eight-lane vectors, both rows of a pair through one activation.
    @inline(__always)
    private static func pairedRows<S: DepthwiseShape, A: VectorActivation>(
        _ shape: S.Type, layout: DepthwiseLayout, input: UnsafePointer<Float>, plane: UnsafeMutablePointer<Float>,
        weights: UnsafePointer<Float>, bias: Float, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: A
    ) {
        let kH = S.kernelSize
        let kW = S.kernelSize
        let stride = S.stride
        let g = layout.geometry
        let outH = g.outputHeight
        let outW = g.outputWidth
        let rowStride = layout.rowStride
        let phaseWidth = layout.phaseWidth
        let planeCount = outH * outW
        let lastVector = (outW - 1) / 16 * 16
        var filled = 0
        var oy = 0
        while oy < outH {
            let paired = oy + 1 < outH
            let needed = min(layout.rows, oy * stride + kH + stride)
            if needed > filled {
                copyInterior(layout: layout, input: input, into: plane, planeRows: filled..<needed)
                filled = needed
            }
            let firstInputRow = UnsafePointer(plane) + oy * stride * rowStride
            if outW <= 8 {
                var acc0 = SIMD8<Float>(repeating: bias)
                var acc1 = acc0
                for t in 0..<(kH + stride) {
                    let inputRow = firstInputRow + t * rowStride
                    for kx in 0..<kW {
                        let v = UnsafeRawPointer(inputRow + (kx % stride) * phaseWidth + kx / stride).loadUnaligned(
                            as: SIMD8<Float>.self)
                        if t < kH { acc0 += weights[t * kW + kx] * v }
                        if t >= stride { acc1 += weights[(t - stride) * kW + kx] * v }
                    }
                }
                let index = oy * outW
                if residual == nil && index + outW + 8 <= planeCount {
                    // Both rows in one activation; row oy's spill is rewritten by row oy + 1.
                    let result = activation.apply(SIMD16(lowHalf: acc0, highHalf: acc1))
                    UnsafeMutableRawPointer(output + index).storeBytes(of: result.lowHalf, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(output + index + outW).storeBytes(
                        of: result.highHalf, as: SIMD8<Float>.self)
                } else {
                    var both = SIMD16(lowHalf: acc0, highHalf: acc1)
                    if let residual {
                        for lane in 0..<outW { both[lane] += residual[index + lane] }
                        if paired { for lane in 0..<outW { both[8 + lane] += residual[index + outW + lane] } }
                    }
                    let result = activation.apply(both)
                    for lane in 0..<outW { output[index + lane] = result[lane] }
                    if paired { for lane in 0..<outW { output[index + outW + lane] = result[8 + lane] } }
                }
                oy += 2
                continue
            }
            var x = lastVector
            while x >= 0 {
                var acc0 = SIMD16<Float>(repeating: bias)
                var acc1 = acc0
                for t in 0..<(kH + stride) {
                    let inputRow = firstInputRow + t * rowStride + x
                    for kx in 0..<kW {
                        let v = UnsafeRawPointer(inputRow + (kx % stride) * phaseWidth + kx / stride).loadUnaligned(
                            as: SIMD16<Float>.self)
                        if t < kH { acc0 += weights[t * kW + kx] * v }
                        if t >= stride { acc1 += weights[(t - stride) * kW + kx] * v }
                    }
                }
                store(
                    acc0, at: oy * outW + x, count: min(16, outW - x), planeCount: planeCount, output: output,
                    residual: residual, activation: activation)
                if paired {
                    store(
                        acc1, at: (oy + 1) * outW + x, count: min(16, outW - x), planeCount: planeCount,
                        output: output, residual: residual, activation: activation)
                }
                x -= 16
            }
            oy += 2
        }
    }

    /// Adds the residual, applies the activation and stores `count` columns of `acc` at
    /// `output[index...]` (whole when that stays inside the plane and there is no residual).
    @inline(__always)
    private static func store<A: VectorActivation>(
        _ acc: SIMD16<Float>, at index: Int, count: Int, planeCount: Int, output: UnsafeMutablePointer<Float>,
        residual: UnsafePointer<Float>?, activation: A
    ) {
        var acc = acc
        if count == 16 || (residual == nil && index + 16 <= planeCount) {
            if let residual { acc += UnsafeRawPointer(residual + index).loadUnaligned(as: SIMD16<Float>.self) }
            UnsafeMutableRawPointer(output + index).storeBytes(of: activation.apply(acc), as: SIMD16<Float>.self)
        } else {
            if let residual {
                var r = SIMD16<Float>()
                for lane in 0..<count { r[lane] = residual[index + lane] }
                acc += r
            }
            let result = activation.apply(acc)
            for lane in 0..<count { output[index + lane] = result[lane] }
        }
    }

    /// The output rows of one channel for any kernel, stride and dilation, one row and sixteen
    /// columns at a time.
    @inline(__always)
    private static func rows<A: VectorActivation>(
        kH: Int, kW: Int, layout: DepthwiseLayout, plane: UnsafeMutablePointer<Float>, weights: UnsafePointer<Float>,
        bias: Float, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: A
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

    /// The scalar reference of ``runChannel(layout:input:weights:bias:residual:output:activation:scratch:avx2:)``
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

    /// Copies the input plane into the interior of a phase-split plane whose padding is already
    /// zero (see ``clearPlane(layout:scratch:)``); for strides above 2 it writes the whole plane.
    static func copyInterior(
        layout: DepthwiseLayout, input: UnsafePointer<Float>, into plane: UnsafeMutablePointer<Float>,
        planeRows: Range<Int>? = nil
    ) {
        let g = layout.geometry
        let phases = layout.phases
        if phases > 2 {
            fillPlane(layout: layout, input: input, into: plane)
            return
        }
        let inW = g.inputWidth
        let phaseWidth = layout.phaseWidth
        let rows = planeRows ?? 0..<layout.rows
        let firstRow = max(0, rows.lowerBound - g.padTop)
        let lastRow = min(g.inputHeight, min(layout.rows, rows.upperBound) - g.padTop)
        if lastRow <= firstRow { return }
        if phases == 1 {
            let count = max(0, min(inW, phaseWidth - g.padLeft))
            for iy in firstRow..<lastRow {
                let dest = plane + (iy + g.padTop) * layout.rowStride + g.padLeft
                let source = input + iy * inW
                copyFloats(from: source, to: dest, count: count)
            }
            return
        }
        // Stride 2: even input columns land in phase padLeft % 2 from column padLeft / 2, odd
        // ones in the other phase from column (padLeft + 1) / 2.
        let evenPhase = g.padLeft % 2
        let evenStart = g.padLeft / 2
        let oddStart = (g.padLeft + 1) / 2
        let evenCount = max(0, min((inW + 1) / 2, phaseWidth - evenStart))
        let oddCount = max(0, min(inW / 2, phaseWidth - oddStart))
        let both = min(evenCount, oddCount)
        for iy in firstRow..<lastRow {
            let dest = plane + (iy + g.padTop) * layout.rowStride
            let even = dest + evenPhase * phaseWidth + evenStart
            let odd = dest + (1 - evenPhase) * phaseWidth + oddStart
            let source = input + iy * inW
            // Deinterleave sixteen, eight, then four pairs at a time while all their input columns
            // exist (14- and 28-wide rows were mostly the scalar loop).
            var j = deinterleavePairs(from: source, even: even, odd: odd, pairs: both, width: inW)
            while j < both {
                even[j] = source[2 * j]
                odd[j] = source[2 * j + 1]
                j += 1
            }
            if evenCount > both { for j in both..<evenCount { even[j] = source[2 * j] } }
            if oddCount > both { for j in both..<oddCount { odd[j] = source[2 * j + 1] } }
        }
    }

    /// Copies `count` floats from `source` to `dest`: sixteen, then eight and four at a time, then
    /// single floats.
    @inline(__always)
    private static func copyFloats(from source: UnsafePointer<Float>, to dest: UnsafeMutablePointer<Float>, count: Int)
    {
        var j = 0
        while j + 16 <= count {
            UnsafeMutableRawPointer(dest + j).storeBytes(
                of: UnsafeRawPointer(source + j).loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
            j += 16
        }
        if j + 8 <= count {
            UnsafeMutableRawPointer(dest + j).storeBytes(
                of: UnsafeRawPointer(source + j).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
            j += 8
        }
        if j + 4 <= count {
            UnsafeMutableRawPointer(dest + j).storeBytes(
                of: UnsafeRawPointer(source + j).loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
            j += 4
        }
        while j < count {
            dest[j] = source[j]
            j += 1
        }
    }

    /// Splits input pairs `j ..< pairs` (input columns `2j`, `2j + 1`) into `even` and `odd`:
    /// sixteen, then eight, then four pairs per step while all of a step's input columns lie
    /// within `width`; returns the first pair left.
    @inline(__always)
    private static func deinterleavePairs(
        from source: UnsafePointer<Float>, even: UnsafeMutablePointer<Float>, odd: UnsafeMutablePointer<Float>,
        pairs: Int, width: Int
    ) -> Int {
        var j = 0
        while j + 16 <= pairs && 2 * j + 32 <= width {
            let v = UnsafeRawPointer(source + 2 * j).loadUnaligned(as: SIMD32<Float>.self)
            UnsafeMutableRawPointer(even + j).storeBytes(of: v.evenHalf, as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(odd + j).storeBytes(of: v.oddHalf, as: SIMD16<Float>.self)
            j += 16
        }
        if j + 8 <= pairs && 2 * j + 16 <= width {
            let v = UnsafeRawPointer(source + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(even + j).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(odd + j).storeBytes(of: v.oddHalf, as: SIMD8<Float>.self)
            j += 8
        }
        if j + 4 <= pairs && 2 * j + 8 <= width {
            let v = UnsafeRawPointer(source + 2 * j).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(even + j).storeBytes(of: v.evenHalf, as: SIMD4<Float>.self)
            UnsafeMutableRawPointer(odd + j).storeBytes(of: v.oddHalf, as: SIMD4<Float>.self)
            j += 4
        }
        return j
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

extension apus_depthwise_geometry {
    /// The C depthwise kernels' geometry of `g` (sizes, kernel, stride, top and left padding), or
    /// `nil` unless its kernel and stride are square and it has no dilation.
    init?(square g: Conv2DGeometry) {
        guard g.kernelHeight == g.kernelWidth, g.strideHeight == g.strideWidth, g.dilationHeight == 1,
            g.dilationWidth == 1
        else { return nil }
        self.init(
            input_height: g.inputHeight, input_width: g.inputWidth, output_height: g.outputHeight,
            output_width: g.outputWidth, kernel: g.kernelHeight, stride: g.strideHeight, pad_top: g.padTop,
            pad_left: g.padLeft)
    }
}
