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

    /// Floats of one worker's scratch: the task's planes, then the pooling's row buffer.
    var slotFloatCount: Int {
        let g = conv.geometry
        let planes = DirectConvKernel.channelsPerPass * g.outputHeight * g.outputWidth
        return (planes + 15) / 16 * 16 + Pool2D.maxBufferCount(pool)
    }

    /// The workspace ``run(input:weights:bias:activation:output:context:)`` needs on up to
    /// `threadCount` threads: one scratch per worker.
    public func workspaceByteCount(threadCount: Int) -> Int {
        let blocks =
            (conv.geometry.outputChannels + DirectConvKernel.channelsPerPass - 1)
            / DirectConvKernel.channelsPerPass
        return slotFloatCount * MemoryLayout<Float>.stride * max(1, min(threadCount, conv.geometry.batch * blocks))
    }

    /// Computes `output = maxpool(activation(conv(input, weights) + bias))`.
    public func run(
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        activation: FusedActivation, output: UnsafeMutablePointer<Float>, context: ComputeContext
    ) {
        guard let kernel = conv.vectorKernel else { return }
        let g = conv.geometry
        let per = DirectConvKernel.channelsPerPass
        let blocks = (g.outputChannels + per - 1) / per
        struct Blocks: ParallelSlotRanges {
            let kernel: DirectConvKernel
            let g: Conv2DGeometry
            let pool: Pool2DGeometry
            let blocks: Int
            let planesFloats: Int
            let operands: ConvOperands

            func run(_ range: Range<Int>, scratch: UnsafeMutableRawPointer) {
                let planes = scratch.assumingMemoryBound(to: Float.self)
                let buffer = planes + planesFloats
                let per = DirectConvKernel.channelsPerPass
                let plane = g.outputHeight * g.outputWidth
                let pooled = pool.outputHeight * pool.outputWidth
                let o = operands
                for task in range {
                    let image = task / blocks
                    let first = task % blocks * per
                    let count = min(g.outputChannels, first + per) - first
                    // Channels 0 ..< count of the kernel's view: weights and bias from `first` on.
                    kernel.runDirect(
                        inputChannels: g.inputChannels, channels: 0..<count,
                        input: o.input + image * g.inputChannels * g.inputHeight * g.inputWidth,
                        weights: o.weights + first * g.inputChannels * g.kernelHeight * g.kernelWidth,
                        bias: o.bias.map { $0 + first }, residual: nil, output: planes, activation: o.activation)
                    let out = o.output + (image * g.outputChannels + first) * pooled
                    for j in 0..<count {
                        Pool2D.runMaxPlane(pool, planes + j * plane, out + j * pooled, buffer: buffer)
                    }
                }
            }
        }
        let planesFloats = (per * g.outputHeight * g.outputWidth + 15) / 16 * 16
        context.parallelFor(
            g.batch * blocks, slotByteCount: slotFloatCount * MemoryLayout<Float>.stride,
            Blocks(
                kernel: kernel, g: g, pool: pool, blocks: blocks, planesFloats: planesFloats,
                operands: ConvOperands(
                    input: input, weights: weights, bias: bias, residual: nil, output: output, activation: activation)))
    }
}
