/// A network's stem, computed by the direct kernel (``Conv2DPlan/Algorithm/direct``), and the max
/// pooling that alone reads its output, as one step: each task's eight output planes (a ResNet
/// stem's are 8 × 112² floats, 401 KB) are computed into the worker's scratch and pooled from
/// there while they are in L2, so the full-resolution map is never written to memory nor read
/// back from it. The same kernels on the same values: the bits of the separate steps.
public struct DirectConvMaxPool: Sendable {
    /// The convolution's plan (the direct path).
    public let conv: Conv2DPlan
    /// The pooling of its output.
    public let pool: Pool2DGeometry

    /// Joins `conv` and `pool`, or `nil` when `conv` is not on the direct kernel or `pool` does
    /// not pool exactly its output (undilated max pooling).
    public init?(conv: Conv2DPlan, pool: Pool2DGeometry) {
        let g = conv.geometry
        guard conv.algorithm == .direct, conv.vectorKernel != nil, pool.batch == g.batch,
            pool.channels == g.outputChannels, pool.inputHeight == g.outputHeight, pool.inputWidth == g.outputWidth,
            pool.dilationHeight == 1, pool.dilationWidth == 1
        else { return nil }
        self.conv = conv
        self.pool = pool
    }

    /// Floats of one pass's planes in a worker's scratch (rounded to whole vectors).
    var planeFloatCount: Int {
        (DirectConvKernel.channelsPerPass * conv.geometry.outputHeight * conv.geometry.outputWidth + 15) / 16 * 16
    }

    /// Floats of one worker's scratch: the pass's planes, then the pooling's row buffer.
    var slotFloatCount: Int { planeFloatCount + Pool2D.maxBufferCount(pool) }

    /// The workspace ``run(input:weights:bias:activation:output:context:)`` needs on up to
    /// `threadCount` threads: one scratch per worker.
    public func workspaceByteCount(threadCount: Int) -> Int {
        let tasks = conv.geometry.batch * DirectConvKernel.passCount(conv.geometry)
        return slotFloatCount * MemoryLayout<Float>.stride * max(1, min(threadCount, tasks))
    }

    /// Computes `output = maxpool(activation(conv(input, weights) + bias))`.
    public func run(
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        activation: FusedActivation, output: UnsafeMutablePointer<Float>, context: ComputeContext
    ) {
        guard let kernel = conv.vectorKernel else { return }
        let g = conv.geometry
        let passes = DirectConvKernel.passCount(g)
        struct Passes: ParallelSlotRanges {
            let kernel: DirectConvKernel
            let g: Conv2DGeometry
            let pool: Pool2DGeometry
            let passes: Int
            let planeFloats: Int
            let operands: ConvOperands

            func run(_ range: Range<Int>, scratch: UnsafeMutableRawPointer) {
                let planes = scratch.assumingMemoryBound(to: Float.self)
                let buffer = planes + planeFloats
                let plane = g.outputHeight * g.outputWidth
                let pooled = pool.outputHeight * pool.outputWidth
                for task in range {
                    let image = task / passes
                    let first = task % passes * DirectConvKernel.channelsPerPass
                    kernel.runDirectPass(image: image, first: first, geometry: g, operands: operands, into: planes)
                    let out = operands.output + (image * g.outputChannels + first) * pooled
                    for j in 0..<min(DirectConvKernel.channelsPerPass, g.outputChannels - first) {
                        Pool2D.runMaxPlane(pool, planes + j * plane, out + j * pooled, buffer: buffer)
                    }
                }
            }
        }
        context.parallelFor(
            g.batch * passes, slotByteCount: slotFloatCount * MemoryLayout<Float>.stride,
            Passes(
                kernel: kernel, g: g, pool: pool, passes: passes, planeFloats: planeFloatCount,
                operands: ConvOperands(
                    input: input, weights: weights, bias: bias, residual: nil, output: output, activation: activation)))
    }
}
