import CApusKernels

/// The AVX-512 direct convolution kernels (Sources/CApusKernels/direct_conv.c), chosen at run time
/// like the packed GEMM, for two kinds of layer:
///
/// - depthwise: the Swift kernel (DepthwiseConv2D) is SSE2 in the default build, where a 16-lane
///   vector is four instructions and a stride-2 tap needs a deinterleaved copy of the plane;
/// - few input channels (a network's stem, 3 → 32 or 64): im2col's reduction of `C · k²` (27 or
///   147) is too short for the GEMM kernel and its column matrix is megabytes.
///
/// Both read the input in place with masked loads (padding costs no copy), take stride 2 as the
/// even (and odd) lanes of 32 loaded columns, convolve stride-1 planes whose rows keep their width
/// as one flat row (7 × 7 and 14 × 14 maps fill whole vectors), keep several vectors in flight,
/// and sum with fused multiply-adds in a fixed order (results never depend on the thread count).
///
/// A plan makes one per layer: the table of where each output vector's taps start and which lanes
/// they may load depends only on the spatial geometry.
final class DirectConvKernel: @unchecked Sendable {
    private var geometry: apus_depthwise_geometry
    private let table: UnsafeMutableRawPointer

    /// The largest table a plan makes (a 1024 × 1024 plane with a 7 × 7 stride-2 kernel needs
    /// about 3.4 MB).
    static let maximumTableBytes = 64 << 20

    /// Output channels the direct (stem) kernel computes per pass.
    static let channelsPerPass = 8

    /// The kernel for `g`'s spatial geometry, or `nil` when it does not apply: no AVX-512 (or
    /// `APUS_PACKED_GEMM=0`), a non-square kernel or stride, a stride above 2, dilation, a kernel
    /// above 7 × 7, or sizes past the table's 32-bit offsets or ``maximumTableBytes``.
    init?(_ g: Conv2DGeometry) {
        guard PackedGemm.hasAVX512, var v = apus_depthwise_geometry(square: g), apus_depthwise_supported(&v) != 0
        else { return nil }
        let size = apus_depthwise_table_size(&v)
        // About 1–13 bytes per output position: bounded, so that a huge plane falls back to the
        // Swift or im2col path (which need no table) instead of a plan-time allocation without limit.
        guard size > 0, size <= Self.maximumTableBytes else { return nil }
        geometry = v
        table = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        apus_depthwise_prepare(&v, table)
    }

    deinit { table.deallocate() }

    /// Whether `g` is a layer for the stem kernel: ungrouped, at most four input channels.
    /// ``init(_:)`` then decides whether the kernel takes its geometry.
    static func suitsFewChannels(_ g: Conv2DGeometry) -> Bool {
        g.groups == 1 && g.inputChannels <= 4 && g.outputChannels >= 1
    }

    /// Depthwise: convolves the planes `tasks` ((image, channel) pairs, channel fastest) of `input`
    /// into `output`, with the per-channel `bias`, the `residual` (same layout as `output`) and
    /// `activation` applied per vector; activations the kernel lacks are applied per plane after.
    /// With `tableOnly`, through the table-driven kernel alone (the reference the specialised row,
    /// band and channel kernels are tested against bitwise).
    func runDepthwise(
        channels: Int, tasks: Range<Int>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: FusedActivation, tableOnly: Bool = false
    ) {
        let (kernelEpilogue, rest) = Self.epilogue(bias: bias, residual: residual, activation: activation)
        var epilogue = kernelEpilogue
        if tableOnly {
            apus_depthwise_table_avx512(
                &geometry, table, input, weights, channels, tasks.lowerBound, tasks.count, output, &epilogue)
        } else {
            apus_depthwise_avx512(
                &geometry, table, input, weights, channels, tasks.lowerBound, tasks.count, output, &epilogue)
        }
        applyRest(rest, output: output, planes: tasks)
    }

    /// Whether ``runDepthwiseBand(channels:planes:input:inputPlaneStride:inputRows:outputRows:weights:bias:output:activation:)``
    /// takes this layer: 3 × 3, stride 2, one column of left padding (the stride-2 row kernel).
    var takesBands: Bool {
        var g = geometry
        return apus_depthwise_band_supported(&g) != 0
    }

    /// Depthwise output rows `outputRows` of the planes `planes` (channel fastest, like
    /// ``runDepthwise(channels:tasks:input:weights:bias:residual:output:activation:)``), reading a
    /// band of input rows: plane `p`'s input row `inputRows.lowerBound` is at `input + (p −
    /// planes.lowerBound) · inputPlaneStride`. The same bits as the whole-plane call. `activation`
    /// must be one the kernel applies itself (no rest).
    func runDepthwiseBand(
        channels: Int, planes: Range<Int>, input: UnsafePointer<Float>, inputPlaneStride: Int, inputRows: Range<Int>,
        outputRows: Range<Int>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: FusedActivation
    ) {
        var (epilogue, rest) = Self.epilogue(bias: bias, residual: nil, activation: activation)
        precondition(rest == .none, "\(activation) is not applied by the band kernel")
        apus_depthwise_band_avx512(
            &geometry, input, inputPlaneStride, inputRows.lowerBound, inputRows.count, weights, channels,
            planes.lowerBound, planes.count, outputRows.lowerBound, outputRows.count, output, &epilogue)
    }

    /// Passes of ``channelsPerPass`` output channels per image: the direct path's tasks per image.
    static func passCount(_ g: Conv2DGeometry) -> Int { (g.outputChannels + channelsPerPass - 1) / channelsPerPass }

    /// One pass of the direct path: output channels `first ..< first + channelsPerPass` (fewer at
    /// the end) of image `image`, their planes written from `planes` on; the residual is read at
    /// the same channels of `operands.residual`, and `operands.output` is not used.
    func runDirectPass(
        image: Int, first: Int, geometry g: Conv2DGeometry, operands o: ConvOperands,
        into planes: UnsafeMutablePointer<Float>
    ) {
        let plane = g.outputHeight * g.outputWidth
        // Channels 0 ..< count of the kernel's view: weights, bias and residual from `first` on.
        runDirect(
            inputChannels: g.inputChannels, channels: 0..<min(Self.channelsPerPass, g.outputChannels - first),
            input: o.input + image * g.inputChannels * g.inputHeight * g.inputWidth,
            weights: o.weights + first * g.inputChannels * g.kernelHeight * g.kernelWidth,
            bias: o.bias.map { $0 + first },
            residual: o.residual.map { $0 + (image * g.outputChannels + first) * plane },
            output: planes, activation: o.activation)
    }

    /// Few input channels: output channels `channels` of one image (`input` and `output` point at
    /// the image, `residual` at its output-shaped residual), weights [M][C][k][k].
    func runDirect(
        inputChannels: Int, channels: Range<Int>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: FusedActivation
    ) {
        let (kernelEpilogue, rest) = Self.epilogue(bias: bias, residual: residual, activation: activation)
        var epilogue = kernelEpilogue
        apus_direct_conv_avx512(
            &geometry, table, input, inputChannels, weights, channels.lowerBound, channels.count, output, &epilogue)
        applyRest(rest, output: output, planes: channels)
    }

    /// The kernel's epilogue, and the activation left for ``Epilogue`` (`.none` when none is).
    private static func epilogue(
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, activation: FusedActivation
    ) -> (apus_gemm_epilogue, FusedActivation) {
        let (code, low, high, rest) = PackedGemm.kernelActivation(activation)
        return (
            apus_gemm_epilogue(
                bias: bias, residual: residual, residual_stride: 0, activation: code, low: low, high: high), rest
        )
    }

    /// Applies what the kernel's epilogue lacks to the computed planes.
    private func applyRest(_ rest: FusedActivation, output: UnsafeMutablePointer<Float>, planes: Range<Int>) {
        guard rest != .none else { return }
        let plane = geometry.output_height * geometry.output_width
        Epilogue.apply(
            to: output + planes.lowerBound * plane, rowCount: 1, columnCount: planes.count * plane,
            rowStride: planes.count * plane, bias: nil, residual: nil, residualRowStride: 0, activation: rest)
    }
}
