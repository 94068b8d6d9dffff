#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A 1 × 1 expansion convolution and the stride-2 depthwise convolution that alone reads its
/// output (MobileNetV2's and EfficientNet's downsampling blocks), run band by band so that the
/// expanded map never goes through memory whole.
///
/// Unjoined, the expansion writes its map (96 × 112 × 112 floats, 4.8 MB, in mobilenet_v2) and the
/// depthwise layer streams it back from L3, which bounds that layer (Docs/performance.md). Joined,
/// each task takes a block of channels and, for each band of depthwise output rows, computes the
/// expansion's rows that the band reads into a scratch of a few hundred kilobytes (with the packed
/// GEMM kernel) and runs the depthwise row kernel on it while it is in L2.
///
/// The results are the unjoined results, bit for bit: every expanded value is the same sum with the
/// same epilogue (the packed kernel's sums do not depend on the columns or rows of the call), and
/// every depthwise output the same sum over the same values (the band kernel is the whole-plane
/// kernel on a row range). The one expanded row two bands share is computed twice.
public struct ExpandDepthwise: Sendable {
    /// The expansion (a ``Conv2DPlan/Algorithm/pointwise`` plan with packed weights).
    public let expansion: Conv2DPlan
    /// The depthwise layer (3 × 3, stride 2, left padding 1, on the AVX-512 kernel).
    public let depthwise: Conv2DPlan
    private let packed: PackedMatrix
    private let kernel: DirectConvKernel
    /// Channels per task: a multiple of the packed kernel's 8-row panels.
    let blockChannels: Int
    /// Depthwise output rows per band.
    let bandRows: Int

    /// Whether planners join such pairs unless told otherwise: yes, unless the environment sets
    /// `APUS_JOIN_EXPANSIONS=0` (to measure the difference).
    public static let isEnabledByDefault = !EnvironmentSwitch.isOff("APUS_JOIN_EXPANSIONS")

    /// The smallest expanded map worth joining. Below it the map stays in L2 or L3 between the
    /// layers and the bands cost more than they save (mobilenet_v2 at 1 thread: 144 × 56² (1.8 MB)
    /// 0.162 → 0.178 ms joined, 576 × 14² 0.134 → 0.150 ms; 96 × 112² (4.8 MB) 0.68 → 0.37 ms).
    static let minimumExpandedBytes = 4 << 20

    /// Joins the two plans, or `nil` when they do not fit the scheme: batch 1; a pointwise
    /// expansion with packed weights whose output is the depthwise layer's whole input; a
    /// depthwise layer the band kernel takes, with an activation it applies itself (none, Relu,
    /// Clip, Sigmoid, SiLU); an expanded map of at least ``minimumExpandedBytes``.
    ///
    /// - Parameter threadCount: the threads the plan runs on: one block of channels per thread.
    public init?(
        expansion: Conv2DPlan, depthwise: Conv2DPlan, depthwiseActivation: FusedActivation, threadCount: Int
    ) {
        let e = expansion.geometry
        let d = depthwise.geometry
        guard expansion.algorithm == .pointwise, let packed = expansion.packedWeights,
            depthwise.algorithm == .depthwise, let kernel = depthwise.vectorKernel, kernel.takesBands,
            e.batch == 1, d.batch == 1, e.groups == 1, e.outputChannels == d.inputChannels,
            d.groups == d.inputChannels, d.outputChannels == d.inputChannels,
            e.outputHeight == d.inputHeight, e.outputWidth == d.inputWidth, d.inputWidth >= 1,
            PackedGemm.kernelActivation(depthwiseActivation).rest == .none,
            e.outputChannels * e.outputHeight * e.outputWidth * 4 >= Self.minimumExpandedBytes
        else { return nil }
        self.expansion = expansion
        self.depthwise = depthwise
        self.packed = packed
        self.kernel = kernel
        let channels = e.outputChannels
        let perThread = (channels + max(1, threadCount) - 1) / max(1, threadCount)
        blockChannels = max(8, (perThread + 7) / 8 * 8)
        // About 384 KB of scratch per task: the band's expanded rows stay in L2 while the depthwise
        // kernel reads them (bands of 4 to 8 output rows measured best for mobilenet_v2's 96 × 112²).
        let rowsInScratch = max(3, (96 * 1024) / max(1, min(blockChannels, channels) * d.inputWidth))
        bandRows = max(1, min(d.outputHeight, (rowsInScratch - 1) / 2))
    }

    private var taskCount: Int { (expansion.geometry.outputChannels + blockChannels - 1) / blockChannels }

    /// Bytes of one task's scratch: its block of channels × the input rows of one band.
    private var slotByteCount: Int {
        let rows = 2 * bandRows + 1
        return (min(blockChannels, expansion.geometry.outputChannels) * rows * depthwise.geometry.inputWidth * 4 + 63)
            / 64 * 64
    }

    /// Workspace for a run on `threadCount` threads.
    public func workspaceByteCount(threadCount: Int) -> Int {
        min(max(1, threadCount), taskCount) * slotByteCount
    }

    /// What one run reads and writes.
    struct Operands {
        let input: UnsafePointer<Float>
        let expansionBias: UnsafePointer<Float>?
        let expansionActivation: FusedActivation
        let depthwiseWeights: UnsafePointer<Float>
        let depthwiseBias: UnsafePointer<Float>?
        let depthwiseActivation: FusedActivation
        let output: UnsafeMutablePointer<Float>
    }

    /// Runs both layers: `input` is the expansion's input image, `output` the depthwise layer's.
    /// Needs ``workspaceByteCount(threadCount:)`` bytes of `context`'s workspace.
    public func run(
        input: UnsafePointer<Float>, expansionBias: UnsafePointer<Float>?, expansionActivation: FusedActivation,
        depthwiseWeights: UnsafePointer<Float>, depthwiseBias: UnsafePointer<Float>?,
        depthwiseActivation: FusedActivation, output: UnsafeMutablePointer<Float>, context: ComputeContext
    ) {
        struct Workers: ParallelSlotRanges {
            let plan: ExpandDepthwise
            let operands: Operands

            func run(_ range: Range<Int>, scratch: UnsafeMutableRawPointer) {
                let band = scratch.assumingMemoryBound(to: Float.self)
                for task in range { plan.runBlock(task, scratch: band, operands) }
            }
        }
        let operands = Operands(
            input: input, expansionBias: expansionBias, expansionActivation: expansionActivation,
            depthwiseWeights: depthwiseWeights, depthwiseBias: depthwiseBias, depthwiseActivation: depthwiseActivation,
            output: output)
        context.parallelFor(taskCount, slotByteCount: slotByteCount, Workers(plan: self, operands: operands))
    }

    /// One block of channels, band by band.
    private func runBlock(_ task: Int, scratch: UnsafeMutablePointer<Float>, _ o: Operands) {
        let e = expansion.geometry
        let d = depthwise.geometry
        let channels = e.outputChannels
        let first = task * blockChannels
        let count = min(blockChannels, channels - first)
        let width = d.inputWidth
        let plane = e.outputHeight * e.outputWidth
        var oy = 0
        while oy < d.outputHeight {
            let rows = min(bandRows, d.outputHeight - oy)
            // The input rows those output rows read, inside the image.
            let firstRow = max(0, 2 * oy - d.padTop)
            let endRow = min(d.inputHeight, 2 * (oy + rows - 1) - d.padTop + 3)
            let columns = (endRow - firstRow) * width
            PackedGemm.multiply(
                packed, firstRow: first, rowCount: count, n: columns, b: o.input + firstRow * width, ldb: plane,
                c: scratch, ldc: columns, bias: o.expansionBias.map { $0 + first }, activation: o.expansionActivation)
            kernel.runDepthwiseBand(
                channels: channels, planes: first..<first + count, input: scratch, inputPlaneStride: columns,
                inputRows: firstRow..<endRow, outputRows: oy..<oy + rows, weights: o.depthwiseWeights,
                bias: o.depthwiseBias, output: o.output, activation: o.depthwiseActivation)
            oy += rows
        }
    }
}
