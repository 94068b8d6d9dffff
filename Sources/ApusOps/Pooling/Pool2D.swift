import CApusKernels

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The sizes of a 2-D pooling over NCHW float32 tensors (1-D: height 1). The output size is
/// given, not derived, because ONNX's `ceil_mode` and `auto_pad` rules live in the operator.
public struct Pool2DGeometry: Sendable, Hashable {
    /// Images (N) × channels (C): the number of independent planes is their product.
    public var batch: Int
    /// Channels (C).
    public var channels: Int
    /// Input height.
    public var inputHeight: Int
    /// Input width.
    public var inputWidth: Int
    /// Output height.
    public var outputHeight: Int
    /// Output width.
    public var outputWidth: Int
    /// Window height.
    public var kernelHeight: Int
    /// Window width.
    public var kernelWidth: Int
    /// Vertical stride.
    public var strideHeight: Int
    /// Horizontal stride.
    public var strideWidth: Int
    /// Vertical dilation.
    public var dilationHeight: Int
    /// Horizontal dilation.
    public var dilationWidth: Int
    /// Padding above the input.
    public var padTop: Int
    /// Padding left of the input.
    public var padLeft: Int
    /// Padding below the input (bounds the windows counted by `count_include_pad`).
    public var padBottom: Int
    /// Padding right of the input.
    public var padRight: Int

    public init(
        batch: Int, channels: Int, inputHeight: Int, inputWidth: Int, outputHeight: Int, outputWidth: Int,
        kernelHeight: Int, kernelWidth: Int, strideHeight: Int = 1, strideWidth: Int = 1, dilationHeight: Int = 1,
        dilationWidth: Int = 1, padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0
    ) {
        self.batch = batch
        self.channels = channels
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.dilationHeight = dilationHeight
        self.dilationWidth = dilationWidth
        self.padTop = padTop
        self.padLeft = padLeft
        self.padBottom = padBottom
        self.padRight = padRight
    }

    /// ONNX's output size for explicit pads: `floor` (or `ceil` with `ceilMode`) of
    /// `(input + pads − dilated kernel) / stride + 1`, where in ceil mode the last window must
    /// start inside the input or the leading padding (as PyTorch and onnx's reference do).
    /// `nil` when the window does not fit or the arithmetic overflows.
    public static func outputSize(
        input: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int, ceilMode: Bool
    ) -> Int? {
        guard input >= 0, kernel >= 1, stride >= 1, dilation >= 1, padBegin >= 0, padEnd >= 0 else { return nil }
        let (span, o1) = (kernel - 1).multipliedReportingOverflow(by: dilation)
        let (padded, o2) = input.addingReportingOverflow(padBegin)
        let (padded2, o3) = padded.addingReportingOverflow(padEnd)
        guard !o1, !o2, !o3, padded2 - span - 1 >= 0 else { return nil }
        let room = padded2 - span - 1
        var size = (ceilMode ? (room + stride - 1) / stride : room / stride) + 1
        if ceilMode && (size - 1) * stride >= input + padBegin { size -= 1 }
        return size
    }
}

/// Pooling kernels. Each (image, channel) plane is one task, so results never depend on the
/// thread count.
public enum Pool2D {
    /// Which reduction a window applies.
    public enum Kind: Sendable, Hashable {
        /// The largest input value in the window (padding ignored; NaN propagates).
        case max
        /// The mean of the window: over input values only, or (`countIncludePad`) dividing by
        /// the number of window positions inside the padded input.
        case average(countIncludePad: Bool)
    }

    /// Pools `input` (N × C × H × W) into `output` (N × C × outH × outW).
    public static func run(
        _ kind: Kind, geometry g: Pool2DGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        context: ComputeContext
    ) {
        let planes = g.batch * g.channels
        let inPlane = g.inputHeight * g.inputWidth
        let outPlane = g.outputHeight * g.outputWidth
        if kind == .max && g.dilationHeight == 1 && g.dilationWidth == 1 {
            let padded = maxRowWidth(g)
            let slot = maxBufferCount(g)
            if let workspace = context.workspace, context.workspaceByteCount >= slot * MemoryLayout<Float>.stride {
                // One row buffer per worker from the planned workspace: nothing is allocated per run.
                let workers = min(context.threadCount, planes, context.workspaceByteCount / (slot * 4))
                nonisolated(unsafe) let base = workspace.assumingMemoryBound(to: Float.self)
                /// One range of planes per worker, with that worker's row buffer.
                struct MaxPlaneRanges: ParallelTasks {
                    let g: Pool2DGeometry
                    let input: UnsafePointer<Float>
                    let output: UnsafeMutablePointer<Float>
                    let inPlane: Int
                    let outPlane: Int
                    let planes: Int
                    let workers: Int
                    let base: UnsafeMutablePointer<Float>
                    let slot: Int

                    func run(_ worker: Int) {
                        let buffer = base + worker * slot
                        for plane in (worker * planes / workers)..<((worker + 1) * planes / workers) {
                            Pool2D.runMaxPlane(g, input + plane * inPlane, output + plane * outPlane, buffer: buffer)
                        }
                    }
                }
                ComputeContext(threadCount: workers).parallelFor(
                    workers,
                    MaxPlaneRanges(
                        g: g, input: input, output: output, inPlane: inPlane, outPlane: outPlane, planes: planes,
                        workers: workers, base: base, slot: slot))
                return
            }
            /// One plane per task, each with a temporary row buffer.
            struct MaxPlanes: ParallelTasks {
                let g: Pool2DGeometry
                let input: UnsafePointer<Float>
                let output: UnsafeMutablePointer<Float>
                let inPlane: Int
                let outPlane: Int
                let padded: Int

                func run(_ plane: Int) {
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * padded + 64) { buffer in
                        guard let buffer = buffer.baseAddress else { return }
                        Pool2D.runMaxPlane(g, input + plane * inPlane, output + plane * outPlane, buffer: buffer)
                    }
                }
            }
            context.parallelFor(
                planes,
                MaxPlanes(g: g, input: input, output: output, inPlane: inPlane, outPlane: outPlane, padded: padded))
            return
        }
        /// One plane per task.
        struct Planes: ParallelTasks {
            let kind: Kind
            let g: Pool2DGeometry
            let input: UnsafePointer<Float>
            let output: UnsafeMutablePointer<Float>
            let inPlane: Int
            let outPlane: Int

            func run(_ plane: Int) {
                Pool2D.runPlane(kind, g, input + plane * inPlane, output + plane * outPlane)
            }
        }
        context.parallelFor(
            planes, Planes(kind: kind, g: g, input: input, output: output, inPlane: inPlane, outPlane: outPlane))
    }

    /// Whether max pooling without dilation runs as the AVX2 kernel (`apus_max_pool_avx2`) on a CPU
    /// with AVX2 but without ``PackedGemm/hasAVX512``. `APUS_MAX_POOL_AVX2=0` keeps the Swift code.
    static let usesAVX2MaxPool: Bool = {
        if EnvironmentSwitch.isOff("APUS_MAX_POOL_AVX2") { return false }
        return PackedGemm.cpuHasAVX2 && !PackedGemm.hasAVX512
    }()

    /// Floats of row buffer one worker of the max path needs (rounded to whole vectors).
    static func maxBufferCount(_ g: Pool2DGeometry) -> Int {
        (2 * maxRowWidth(g) + 64 + 15) / 16 * 16
    }

    /// The workspace ``run(_:geometry:input:output:context:)`` uses when it may run on
    /// `threadCount` threads: one row buffer per worker for max pooling, none otherwise. Without
    /// it the kernel still runs, with a temporary buffer per plane.
    public static func workspaceByteCount(_ kind: Kind, geometry g: Pool2DGeometry, threadCount: Int) -> Int {
        guard kind == .max && g.dilationHeight == 1 && g.dilationWidth == 1 else { return 0 }
        return maxBufferCount(g) * MemoryLayout<Float>.stride * max(1, min(threadCount, g.batch * g.channels))
    }

    /// `a` where `a` is larger or NaN, else `b` — once NaN, the running maximum stays NaN (ONNX
    /// MaxPool propagates NaN).
    @inline(__always)
    static func maxKeepingNaN(_ best: SIMD16<Float>, _ v: SIMD16<Float>) -> SIMD16<Float> {
        best.replacing(with: v, where: (v .> best) .| (v .!= v))
    }

    /// Elements of the padded row maximum of ``runMaxPlane(_:_:_:buffer:)``: the left padding, the
    /// input row, and −∞ up to the end of the last window (ceil mode may run past the right pad).
    static func maxRowWidth(_ g: Pool2DGeometry) -> Int {
        max(g.padLeft + g.inputWidth, (g.outputWidth - 1) * g.strideWidth + g.kernelWidth, 1)
    }

    /// Max pooling without dilation: for each output row, the maximum over the window's input rows
    /// first (sixteen columns at a time) into a row padded with −∞, so that the pass over the
    /// window's columns needs no bounds checks. With stride 2 that row is split into its even and
    /// odd columns (the window's columns are then contiguous in each), so both passes run sixteen
    /// outputs at a time; `buffer` holds `2 · maxRowWidth + 64` values.
    static func runMaxPlane(
        _ g: Pool2DGeometry, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
        buffer: UnsafeMutablePointer<Float>
    ) {
        if (PackedGemm.hasAVX512 || usesAVX2MaxPool) && g.strideWidth <= 2 {
            // The same algorithm in AVX-512 or AVX2 C, value for value (SIMD16 is four SSE2
            // instructions per vector in the default build): resnet's 64 × 112² MaxPool 0.227 →
            // 0.149 ms with AVX-512, 0.49–0.72 → 0.31–0.45 ms with AVX2 on a Zen 3.
            var v = g.kernelGeometry
            if PackedGemm.hasAVX512 {
                apus_max_pool_avx512(&v, input, 1, output, buffer)
            } else {
                apus_max_pool_avx2(&v, input, 1, output, buffer)
            }
            return
        }
        let inW = g.inputWidth
        let outW = g.outputWidth
        let width = maxRowWidth(g)
        let rowMax = buffer
        // Padding columns stay −∞ for every row; only [padLeft, padLeft + inW) is rewritten.
        rowMax.update(repeating: -.infinity, count: width + 16)
        let inside = rowMax + g.padLeft
        let halfWidth = (width + 1) / 2
        let even = buffer + width + 16
        let odd = even + halfWidth + 16
        for oy in 0..<g.outputHeight {
            let y0 = oy * g.strideHeight - g.padTop
            let (ky0, ky1) = validRange(start: y0, count: g.kernelHeight, dilation: 1, limit: g.inputHeight)
            if ky0 >= ky1 {
                inside.update(repeating: -.infinity, count: inW)
            } else {
                inside.update(from: input + (y0 + ky0) * inW, count: inW)
                for ky in (ky0 + 1)..<ky1 {
                    let row = input + (y0 + ky) * inW
                    var x = 0
                    while x + 16 <= inW {
                        let best = UnsafeRawPointer(inside + x).loadUnaligned(as: SIMD16<Float>.self)
                        let v = UnsafeRawPointer(row + x).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(inside + x).storeBytes(
                            of: maxKeepingNaN(best, v), as: SIMD16<Float>.self)
                        x += 16
                    }
                    while x < inW {
                        let v = row[x]
                        if v > inside[x] || v.isNaN { inside[x] = v }
                        x += 1
                    }
                }
            }
            let outRow = output + oy * outW
            switch g.strideWidth {
            case 1:
                columnMax(outRow, outW, g.kernelWidth) { UnsafePointer(rowMax) + $0 }
            case 2:
                var j = 0
                while 2 * j + 32 <= width {
                    let pairs = UnsafeRawPointer(rowMax + 2 * j).loadUnaligned(as: SIMD32<Float>.self)
                    UnsafeMutableRawPointer(even + j).storeBytes(of: pairs.evenHalf, as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(odd + j).storeBytes(of: pairs.oddHalf, as: SIMD16<Float>.self)
                    j += 16
                }
                while 2 * j < width {
                    even[j] = rowMax[2 * j]
                    odd[j] = 2 * j + 1 < width ? rowMax[2 * j + 1] : -.infinity
                    j += 1
                }
                columnMax(outRow, outW, g.kernelWidth) { kx in UnsafePointer(kx % 2 == 0 ? even : odd) + kx / 2 }
            default:
                for ox in 0..<outW {
                    let window = rowMax + ox * g.strideWidth
                    var best = window[0]
                    for kx in 1..<g.kernelWidth {
                        let v = window[kx]
                        if v > best || v.isNaN && !best.isNaN { best = v }
                    }
                    outRow[ox] = best
                }
            }
        }
    }

    /// `out[ox] = max over kx of tap(kx)[ox]` for `count` outputs, sixteen at a time (the last
    /// vector may read up to fifteen values past the taps' end: the buffers have that slack).
    @inline(__always)
    private static func columnMax(
        _ out: UnsafeMutablePointer<Float>, _ count: Int, _ kernelWidth: Int, tap: (Int) -> UnsafePointer<Float>
    ) {
        var x = 0
        while x < count {
            var best = UnsafeRawPointer(tap(0) + x).loadUnaligned(as: SIMD16<Float>.self)
            for kx in 1..<max(1, kernelWidth) {
                best = maxKeepingNaN(best, UnsafeRawPointer(tap(kx) + x).loadUnaligned(as: SIMD16<Float>.self))
            }
            if x + 16 <= count {
                UnsafeMutableRawPointer(out + x).storeBytes(of: best, as: SIMD16<Float>.self)
            } else {
                for lane in 0..<(count - x) { out[x + lane] = best[lane] }
            }
            x += 16
        }
    }

    /// First and end (exclusive) window index whose position lies in `0..<limit`:
    /// positions are `start + i * dilation`.
    @inline(__always)
    static func validRange(start: Int, count: Int, dilation: Int, limit: Int) -> (Int, Int) {
        let first = start >= 0 ? 0 : (-start + dilation - 1) / dilation
        let last = limit - 1 - start < 0 ? 0 : min(count, (limit - 1 - start) / dilation + 1)
        return (min(first, last), last)
    }

    private static func runPlane(
        _ kind: Kind, _ g: Pool2DGeometry, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>
    ) {
        for oy in 0..<g.outputHeight {
            let y0 = oy * g.strideHeight - g.padTop
            let (ky0, ky1) = validRange(
                start: y0, count: g.kernelHeight, dilation: g.dilationHeight, limit: g.inputHeight)
            let (py0, py1) = validRange(
                start: y0 + g.padTop, count: g.kernelHeight, dilation: g.dilationHeight,
                limit: g.inputHeight + g.padTop + g.padBottom)
            for ox in 0..<g.outputWidth {
                let x0 = ox * g.strideWidth - g.padLeft
                let (kx0, kx1) = validRange(
                    start: x0, count: g.kernelWidth, dilation: g.dilationWidth, limit: g.inputWidth)
                switch kind {
                case .max:
                    var best = -Float.infinity
                    var sawNaN = false
                    for ky in ky0..<ky1 {
                        let row = input + (y0 + ky * g.dilationHeight) * g.inputWidth + x0
                        for kx in kx0..<kx1 {
                            let v = row[kx * g.dilationWidth]
                            if v > best { best = v }
                            if v.isNaN { sawNaN = true }
                        }
                    }
                    output[oy * g.outputWidth + ox] = sawNaN ? .nan : best
                case .average(let countIncludePad):
                    var sum: Float = 0
                    for ky in ky0..<ky1 {
                        let row = input + (y0 + ky * g.dilationHeight) * g.inputWidth + x0
                        for kx in kx0..<kx1 { sum += row[kx * g.dilationWidth] }
                    }
                    let divisor: Int
                    if countIncludePad {
                        let (px0, px1) = validRange(
                            start: x0 + g.padLeft, count: g.kernelWidth, dilation: g.dilationWidth,
                            limit: g.inputWidth + g.padLeft + g.padRight)
                        divisor = (py1 - py0) * (px1 - px0)
                    } else {
                        divisor = (ky1 - ky0) * (kx1 - kx0)
                    }
                    output[oy * g.outputWidth + ox] = divisor > 0 ? sum / Float(divisor) : .nan
                }
            }
        }
    }

    /// The scalar reference: every window position tested against the bounds one by one.
    public static func reference(
        _ kind: Kind, geometry g: Pool2DGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        for plane in 0..<(g.batch * g.channels) {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    var best = -Float.infinity
                    var sawNaN = false
                    var sum: Float = 0
                    var inside = 0
                    var insidePadded = 0
                    for ky in 0..<g.kernelHeight {
                        for kx in 0..<g.kernelWidth {
                            let iy = oy * g.strideHeight - g.padTop + ky * g.dilationHeight
                            let ix = ox * g.strideWidth - g.padLeft + kx * g.dilationWidth
                            if iy < g.inputHeight + g.padBottom && ix < g.inputWidth + g.padRight { insidePadded += 1 }
                            if iy < 0 || iy >= g.inputHeight || ix < 0 || ix >= g.inputWidth { continue }
                            let v = input[(plane * g.inputHeight + iy) * g.inputWidth + ix]
                            inside += 1
                            sum += v
                            if v.isNaN { sawNaN = true }
                            best = Swift.max(best, v)
                        }
                    }
                    let index = (plane * g.outputHeight + oy) * g.outputWidth + ox
                    switch kind {
                    case .max: output[index] = sawNaN ? .nan : best
                    case .average(let countIncludePad):
                        let divisor = countIncludePad ? insidePadded : inside
                        output[index] = divisor > 0 ? sum / Float(divisor) : .nan
                    }
                }
            }
        }
    }

    /// The mean of `count` floats from `values` (NaN when `count` is 0): 32 running sums (two
    /// vectors of sixteen, so that the adds of one do not wait for the other's; with one,
    /// efficientnet_b0's 17 poolings took 0.274 instead of 0.215 ms), added together, then four
    /// lanes at a time, the last values in order, and divided by the count. The global average pooling's value for one
    /// plane, whether ``global(max:planes:planeSize:input:output:context:)`` or a convolution
    /// that pools its own planes (``Conv2DPlan``'s `planeMeans`) computes it.
    @inline(__always)
    public static func average(_ values: UnsafePointer<Float>, count: Int) -> Float {
        let raw = UnsafeRawPointer(values)
        var i = 0
        var even = SIMD16<Float>(repeating: 0)
        var odd = SIMD16<Float>(repeating: 0)
        while i + 32 <= count {
            even += (raw + i * 4).loadUnaligned(as: SIMD16<Float>.self)
            odd += (raw + i * 4 + 64).loadUnaligned(as: SIMD16<Float>.self)
            i += 32
        }
        if i + 16 <= count {
            even += (raw + i * 4).loadUnaligned(as: SIMD16<Float>.self)
            i += 16
        }
        let sixteen = even + odd
        var four =
            sixteen.lowHalf.lowHalf + sixteen.lowHalf.highHalf + sixteen.highHalf.lowHalf
            + sixteen.highHalf.highHalf
        while i + 4 <= count {
            four += (raw + i * 4).loadUnaligned(as: SIMD4<Float>.self)
            i += 4
        }
        var total = (four[0] + four[1]) + (four[2] + four[3])
        while i < count {
            total += values[i]
            i += 1
        }
        return count > 0 ? total / Float(count) : .nan
    }

    /// Global average (`max == false`) or maximum over each H × W plane of `input` (N × C × H × W),
    /// into `output` (N × C values).
    public static func global(
        max: Bool, planes: Int, planeSize: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        context: ComputeContext
    ) {
        // Under 256 K elements (every global pool of the benchmark models at batch 1) waking a
        // second thread costs more than it saves: one thread reads 1 MB in well under 50 µs.
        let threads = planes * planeSize < 1 << 18 ? ComputeContext(threadCount: 1) : context
        /// One plane per task.
        struct GlobalPlanes: ParallelTasks {
            let max: Bool
            let planeSize: Int
            let input: UnsafePointer<Float>
            let output: UnsafeMutablePointer<Float>

            func run(_ plane: Int) {
                let p = input + plane * planeSize
                let raw = UnsafeRawPointer(p)
                var i = 0
                if max {
                    var best = SIMD16<Float>(repeating: -.infinity)
                    var sawNaN = false
                    while i + 16 <= planeSize {
                        let v = (raw + i * 4).loadUnaligned(as: SIMD16<Float>.self)
                        best = pointwiseMax(best, v)
                        if any(v .!= v) { sawNaN = true }
                        i += 16
                    }
                    var result = best.max()
                    while i < planeSize {
                        if p[i] > result { result = p[i] }
                        if p[i].isNaN { sawNaN = true }
                        i += 1
                    }
                    output[plane] = sawNaN ? .nan : result
                } else {
                    output[plane] = Pool2D.average(p, count: planeSize)
                }
            }
        }
        threads.parallelFor(planes, GlobalPlanes(max: max, planeSize: planeSize, input: input, output: output))
    }
}

extension Pool2DGeometry {
    /// One plane's sizes in the form the C max-pool kernels (`apus_max_pool_avx512`/`_avx2`) take.
    var kernelGeometry: apus_pool_geometry {
        apus_pool_geometry(
            input_height: inputHeight, input_width: inputWidth, output_height: outputHeight,
            output_width: outputWidth, kernel_height: kernelHeight, kernel_width: kernelWidth,
            stride_height: strideHeight, stride_width: strideWidth, pad_top: padTop, pad_left: padLeft)
    }
}
