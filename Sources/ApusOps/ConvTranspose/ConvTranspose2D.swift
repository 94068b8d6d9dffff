/// The sizes of a 2-D transposed convolution over NCHW float32 tensors (1-D: height 1), with
/// weights `[inputChannels, outputChannels / groups, kernelHeight, kernelWidth]` as ONNX stores them.
///
/// Input pixel `(ih, iw)` scatters into output pixel `(ih · stride − padBegin + kh · dilation, …)`;
/// positions outside the output are dropped. Pads may be negative (the output then extends past
/// the full result and those positions hold only the bias).
public struct ConvTranspose2DGeometry: Sendable, Hashable {
    /// Images (N).
    public var batch: Int
    /// Input channels (C), a multiple of `groups`.
    public var inputChannels: Int
    /// Output channels, a multiple of `groups`.
    public var outputChannels: Int
    /// Channel groups.
    public var groups: Int
    /// Input height.
    public var inputHeight: Int
    /// Input width.
    public var inputWidth: Int
    /// Output height.
    public var outputHeight: Int
    /// Output width.
    public var outputWidth: Int
    /// Kernel height.
    public var kernelHeight: Int
    /// Kernel width.
    public var kernelWidth: Int
    /// Vertical stride.
    public var strideHeight: Int
    /// Horizontal stride.
    public var strideWidth: Int
    /// Vertical dilation.
    public var dilationHeight: Int
    /// Horizontal dilation.
    public var dilationWidth: Int
    /// Rows removed above the full result.
    public var padTop: Int
    /// Columns removed left of the full result.
    public var padLeft: Int

    public init(
        batch: Int, inputChannels: Int, outputChannels: Int, groups: Int = 1, inputHeight: Int, inputWidth: Int,
        outputHeight: Int, outputWidth: Int, kernelHeight: Int, kernelWidth: Int, strideHeight: Int = 1,
        strideWidth: Int = 1, dilationHeight: Int = 1, dilationWidth: Int = 1, padTop: Int = 0, padLeft: Int = 0
    ) {
        self.batch = batch
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.groups = groups
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
    }

    /// Floats of the column buffer ``ConvTranspose2D/convTranspose2d(_:input:weight:bias:output:columns:context:)``
    /// needs: one group's `(outputChannels / groups) · kernel area` rows of `inputHeight · inputWidth`.
    public var columnFloatCount: Int {
        outputChannels / groups * kernelHeight * kernelWidth * inputHeight * inputWidth
    }
}

/// 2-D transposed convolution kernels.
public enum ConvTranspose2D {
    /// Plain reference: every input pixel times every weight, scattered into the output.
    public static func convTranspose2dReference(
        _ g: ConvTranspose2DGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>
    ) {
        let inputPerGroup = g.inputChannels / g.groups
        let outputPerGroup = g.outputChannels / g.groups
        for n in 0..<g.batch {
            for oc in 0..<g.outputChannels {
                let plane = output + (n * g.outputChannels + oc) * g.outputHeight * g.outputWidth
                plane.update(repeating: bias?[oc] ?? 0, count: g.outputHeight * g.outputWidth)
                let group = oc / outputPerGroup
                let local = oc % outputPerGroup
                for icLocal in 0..<inputPerGroup {
                    let ic = group * inputPerGroup + icLocal
                    let source = input + (n * g.inputChannels + ic) * g.inputHeight * g.inputWidth
                    let kernel = weight + (ic * outputPerGroup + local) * g.kernelHeight * g.kernelWidth
                    for ih in 0..<g.inputHeight {
                        for iw in 0..<g.inputWidth {
                            let value = source[ih * g.inputWidth + iw]
                            for kh in 0..<g.kernelHeight {
                                let oh = ih * g.strideHeight - g.padTop + kh * g.dilationHeight
                                guard oh >= 0, oh < g.outputHeight else { continue }
                                for kw in 0..<g.kernelWidth {
                                    let ow = iw * g.strideWidth - g.padLeft + kw * g.dilationWidth
                                    guard ow >= 0, ow < g.outputWidth else { continue }
                                    plane[oh * g.outputWidth + ow] += value * kernel[kh * g.kernelWidth + kw]
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// GEMM + col2im: for every image and group, `columns = Wᵀ · X` (one row per output channel
    /// and kernel tap, one column per input pixel, by `BLAS.sgemm`), then each row is added into
    /// the output at its shifted positions. The col2im step runs in parallel over output
    /// channels, each channel always summed in the same order, so threads do not change results.
    ///
    /// - Parameter columns: ``ConvTranspose2DGeometry/columnFloatCount`` floats of scratch.
    /// - Precondition: OpenBLAS is loaded (`BLAS.load()`).
    public static func convTranspose2d(
        _ g: ConvTranspose2DGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Float>,
        context: ComputeContext
    ) {
        let inputPerGroup = g.inputChannels / g.groups
        let outputPerGroup = g.outputChannels / g.groups
        let kernelArea = g.kernelHeight * g.kernelWidth
        let pixels = g.inputHeight * g.inputWidth
        let outputPlane = g.outputHeight * g.outputWidth
        let rows = outputPerGroup * kernelArea
        /// The col2im of one output channel per task.
        struct OutputPlanes: ParallelTasks {
            let g: ConvTranspose2DGeometry
            let columns: UnsafeMutablePointer<Float>
            let bias: UnsafePointer<Float>?
            let outputBase: UnsafeMutablePointer<Float>
            let outputPlane: Int
            let group: Int
            let outputPerGroup: Int
            let kernelArea: Int
            let pixels: Int

            func run(_ local: Int) {
                let plane = outputBase + local * outputPlane
                plane.update(repeating: bias?[group * outputPerGroup + local] ?? 0, count: outputPlane)
                for kh in 0..<g.kernelHeight {
                    for kw in 0..<g.kernelWidth {
                        let row = columns + (local * kernelArea + kh * g.kernelWidth + kw) * pixels
                        // Input columns iw whose output column lands inside [0, outputWidth).
                        let offset = kw * g.dilationWidth - g.padLeft
                        let first = offset >= 0 ? 0 : (-offset + g.strideWidth - 1) / g.strideWidth
                        let limit = g.outputWidth - offset
                        let end =
                            limit <= 0 ? 0 : Swift.min(g.inputWidth, (limit + g.strideWidth - 1) / g.strideWidth)
                        guard first < end else { continue }
                        for ih in 0..<g.inputHeight {
                            let oh = ih * g.strideHeight - g.padTop + kh * g.dilationHeight
                            guard oh >= 0, oh < g.outputHeight else { continue }
                            let source = row + ih * g.inputWidth
                            let destination = plane + oh * g.outputWidth + offset
                            if g.strideWidth == 1 {
                                for iw in first..<end { destination[iw] += source[iw] }
                            } else {
                                for iw in first..<end { destination[iw * g.strideWidth] += source[iw] }
                            }
                        }
                    }
                }
            }
        }
        for n in 0..<g.batch {
            for group in 0..<g.groups {
                let x = input + (n * g.inputChannels + group * inputPerGroup) * pixels
                let w = weight + group * inputPerGroup * rows
                BLAS.sgemm(
                    transposeA: true, transposeB: false, m: rows, n: pixels, k: inputPerGroup, alpha: 1, a: w,
                    lda: rows, b: x, ldb: pixels, beta: 0, c: columns, ldc: pixels)
                let outputBase = output + (n * g.outputChannels + group * outputPerGroup) * outputPlane
                context.parallelFor(
                    outputPerGroup,
                    OutputPlanes(
                        g: g, columns: columns, bias: bias, outputBase: outputBase, outputPlane: outputPlane,
                        group: group, outputPerGroup: outputPerGroup, kernelArea: kernelArea, pixels: pixels))
            }
        }
    }
}
