import CApusKernels

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The ``Conv2DPlan/Algorithm/direct`` path on CPUs without AVX-512: layers with at most four input
/// channels (a network's stem, 3 → 32 or 64 channels) in AVX2 and FMA
/// (Sources/CApusKernels/stem_avx2.c), where im2col's reduction of `C · k²` (27 or 147) leaves
/// OpenBLAS packing more than it multiplies. Output channels are in the lanes, 16 per pass; each
/// output is the bias, then the taps in (input channel, ky, kx) order, one fused multiply-add each,
/// so results do not depend on how rows are split between threads.
///
/// A plan makes one per layer, with the weights packed once (passes of 16 output channels).
final class AVX2StemKernel: @unchecked Sendable {
    private var geometry: apus_stem_geometry
    private let packed: UnsafeMutablePointer<Float>

    /// Output rows per task.
    static let rowsPerTask = 4

    /// Whether plans choose the kernel: the CPU and OS support AVX2 and FMA but not AVX-512 (where
    /// ``DirectConvKernel`` takes stems; `APUS_PACKED_GEMM=avx2` counts as without), and
    /// `APUS_STEM_AVX2` is not `0`.
    static let isEnabled: Bool = {
        if EnvironmentSwitch.isOff("APUS_STEM_AVX2") { return false }
        return PackedGemm.cpuHasAVX2 && !PackedGemm.hasAVX512
    }()

    /// The kernel's view of `g`, or `nil` when it does not take `g`: more than four input channels,
    /// groups, a non-square kernel or stride, dilation, or sizes the C kernel rejects.
    private static func kernelGeometry(_ g: Conv2DGeometry) -> apus_stem_geometry? {
        guard DirectConvKernel.suitsFewChannels(g), g.kernelHeight == g.kernelWidth, g.strideHeight == g.strideWidth,
            g.dilationHeight == 1, g.dilationWidth == 1
        else { return nil }
        var v = apus_stem_geometry(
            input_channels: g.inputChannels, input_height: g.inputHeight, input_width: g.inputWidth,
            output_channels: g.outputChannels, output_height: g.outputHeight, output_width: g.outputWidth,
            kernel: g.kernelHeight, stride: g.strideHeight, pad_top: g.padTop, pad_left: g.padLeft)
        return apus_stem_supported(&v) != 0 ? v : nil
    }

    /// Whether a plan for `g` with constant weights takes this kernel (``isEnabled`` and the
    /// geometry).
    static func takes(_ g: Conv2DGeometry) -> Bool { isEnabled && kernelGeometry(g) != nil }

    /// The kernel for `g` with its weights (`[M][C][k][k]`) packed, or `nil` when it does not take
    /// `g` or the CPU lacks AVX2 and FMA (it runs on AVX-512 CPUs too, where tests call it directly).
    init?(_ g: Conv2DGeometry, weights: UnsafePointer<Float>) {
        guard PackedGemm.cpuHasAVX2, var v = Self.kernelGeometry(g) else { return nil }
        geometry = v
        // At most 4 · 11² taps × the output channels rounded up to 16: a few hundred floats per channel.
        let count = apus_stem_packed_floats(&v)
        packed = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: count)
        apus_stem_pack(&v, weights, packed)
    }

    deinit { packed.deallocate() }

    /// Tasks of one run: blocks of ``rowsPerTask`` output rows of each image.
    func taskCount(batch: Int) -> Int {
        batch * ((geometry.output_height + Self.rowsPerTask - 1) / Self.rowsPerTask)
    }

    /// One task: a block of output rows of one image, every output channel, with the epilogue;
    /// activations the kernel lacks are applied to those rows afterwards.
    func run(task: Int, operands o: ConvOperands) {
        let g = geometry
        let blocks = (g.output_height + Self.rowsPerTask - 1) / Self.rowsPerTask
        let image = task / blocks
        let firstRow = task % blocks * Self.rowsPerTask
        let rows = min(Self.rowsPerTask, g.output_height - firstRow)
        let plane = g.output_height * g.output_width
        let outputImage = o.output + image * g.output_channels * plane
        let (code, low, high, rest) = PackedGemm.kernelActivation(o.activation)
        var epilogue = apus_gemm_epilogue(
            bias: o.bias, residual: o.residual.map { $0 + image * g.output_channels * plane }, residual_stride: 0,
            activation: code, low: low, high: high)
        var geometry = geometry
        apus_stem_avx2(
            &geometry, packed, o.input + image * g.input_channels * g.input_height * g.input_width, firstRow, rows,
            outputImage, &epilogue)
        if rest != .none {
            Epilogue.apply(
                to: outputImage + firstRow * g.output_width, rowCount: g.output_channels,
                columnCount: rows * g.output_width, rowStride: plane, bias: nil, residual: nil, residualRowStride: 0,
                activation: rest)
        }
    }
}
