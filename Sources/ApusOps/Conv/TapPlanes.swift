import CApusKernels

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The input layout of the ``Conv2DPlan/Algorithm/taps`` path: a strided or wider-than-1×1
/// convolution as one GEMM per kernel tap, `W_tap[M × C] · X_tap[C × outH·outW]`, summed tap
/// after tap, where every `X_tap` is a window of a few *strided planes* read in place.
///
/// Tap (ky, kx) reads input row `s·oy + ky·d − padTop` and column `t·ox + kx·e − padLeft` (strides
/// s, t; dilations d, e). Write `ky·d − padTop = s·dy + ry` with `0 ≤ ry < s`: the row is
/// `s·(oy + dy) + ry`. So for each column tap `kx` and row phase `ry`, the plane
/// `P[c][L][ox] = X[c][s·L + ry][t·ox + kx·e − padLeft]`
/// (zero outside the image; `L` over every `oy + dy` some tap needs) holds every tap with that
/// `kx` and `ry`, each a window of `outH` rows starting at row `dy`, and a window of whole rows of
/// width `outW` is a plain row-major `C × outH·outW` matrix with row stride the plane size.
///
/// Against im2col's `kH·kW` copies of the input (at output resolution) this writes at most `s·kW`
/// planes (`kW` for stride 1; one for a 1 × 1 stride-2 projection, the same data as its im2col):
/// for a 3 × 3 stride-2 layer, 6 instead of 9. The planes are filled by an AVX-512 strided copy.
struct TapPlanes: Sendable {
    let geometry: Conv2DGeometry
    /// The row phases some tap uses, in increasing order.
    let rowPhases: [Int]
    /// The smallest `dy` of any tap: plane row 0 is `L = dyMin`.
    let dyMin: Int
    /// Rows of each plane.
    let rows: Int
    /// For each tap (ky-major), the plane it reads and the first row of its window.
    let tapPlane: [Int]
    let tapRow: [Int]

    init(geometry g: Conv2DGeometry) {
        geometry = g
        let s = g.strideHeight
        var phases = Set<Int>()
        var dys: [Int] = []
        var phaseOfRow: [Int] = []
        for ky in 0..<g.kernelHeight {
            let q = ky * g.dilationHeight - g.padTop
            // Floor division and its non-negative remainder.
            let dy = q >= 0 ? q / s : -((-q + s - 1) / s)
            let ry = q - dy * s
            phases.insert(ry)
            dys.append(dy)
            phaseOfRow.append(ry)
        }
        rowPhases = phases.sorted()
        dyMin = dys.min() ?? 0
        rows = g.outputHeight + (dys.max() ?? 0) - dyMin
        var plane: [Int] = []
        var row: [Int] = []
        for ky in 0..<g.kernelHeight {
            let phaseIndex = rowPhases.firstIndex(of: phaseOfRow[ky]) ?? 0
            for kx in 0..<g.kernelWidth {
                plane.append(kx * rowPhases.count + phaseIndex)
                row.append(dys[ky] - dyMin)
            }
        }
        tapPlane = plane
        tapRow = row
    }

    /// Whether the path takes `g`: one group (the strides, dilations and padding are free).
    static func supports(_ g: Conv2DGeometry) -> Bool {
        g.groups == 1 && g.strideHeight >= 1 && g.strideWidth >= 1 && g.outputWidth > 0 && g.outputHeight > 0
    }

    /// Whether the planner uses the path where it can: `APUS_TAP_PLANES=0` keeps im2col instead.
    static let isEnabledByDefault = !EnvironmentSwitch.isOff("APUS_TAP_PLANES")

    var tapCount: Int { geometry.kernelHeight * geometry.kernelWidth }
    var planeCount: Int { geometry.kernelWidth * rowPhases.count }
    /// Floats of one channel's plane.
    var planeFloats: Int { rows * geometry.outputWidth }
    /// Floats of one image's planes: `[plane][channel][row][column]`.
    var floatCount: Int { planeCount * geometry.inputChannels * planeFloats }

    /// Fills every plane of input channels `channels` of one image.
    func fill(input: UnsafePointer<Float>, channels: Range<Int>, into planes: UnsafeMutablePointer<Float>) {
        let g = geometry
        let s = g.strideHeight
        let vector: Int32 = PackedGemm.hasAVX512 ? 1 : 0
        for kx in 0..<g.kernelWidth {
            let columnOffset = kx * g.dilationWidth - g.padLeft
            for (phaseIndex, ry) in rowPhases.enumerated() {
                let plane = kx * rowPhases.count + phaseIndex
                apus_strided_plane(
                    input + channels.lowerBound * g.inputHeight * g.inputWidth, channels.count, g.inputHeight,
                    g.inputWidth, s * dyMin + ry, s, rows, columnOffset, g.strideWidth, g.outputWidth,
                    planes + (plane * g.inputChannels + channels.lowerBound) * planeFloats, vector)
            }
        }
    }

    /// Tap `tap`'s operand: `C` rows of `outH·outW` columns, row stride ``planeFloats``.
    func operand(tap: Int, planes: UnsafePointer<Float>) -> UnsafePointer<Float> {
        planes + tapPlane[tap] * geometry.inputChannels * planeFloats + tapRow[tap] * geometry.outputWidth
    }

    /// The weights `[M][C][kH][kW]` as one `M × C` matrix per tap, packed for the kernel.
    static func packedWeights(_ weights: UnsafePointer<Float>, geometry g: Conv2DGeometry, threadCount: Int)
        -> PackedMatrix
    {
        let taps = g.kernelHeight * g.kernelWidth
        let m = g.outputChannels
        let c = g.inputChannels
        let reordered = UnsafeMutablePointer<Float>.allocate(capacity: max(1, taps * m * c))
        defer { reordered.deallocate() }
        for tap in 0..<taps {
            for row in 0..<m {
                let source = weights + row * c * taps + tap
                let dest = reordered + (tap * m + row) * c
                for channel in 0..<c { dest[channel] = source[channel * taps] }
            }
        }
        return PackedMatrix(
            reordered, rows: m, columns: c, rowStride: c, matrixCount: taps, matrixStride: m * c,
            threadCount: threadCount)
    }
}

extension Conv2DPlan {
    /// The ``Algorithm/taps`` path, per image: the strided planes (split by input channel), then
    /// the (row tile × column tile) tasks, each one packed GEMM per tap into its tile of the
    /// output, the epilogue with the last.
    func runTaps(
        input: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: FusedActivation, context: ComputeContext
    ) {
        let g = geometry
        guard let layout = tapPlanes, let packed = packedWeights else { return }
        let needed = layout.floatCount * MemoryLayout<Float>.stride
        precondition(
            context.workspace != nil && context.workspaceByteCount >= needed,
            "convolution needs \(needed) workspace bytes, has \(context.workspaceByteCount)")
        guard let planes = context.workspace?.assumingMemoryBound(to: Float.self) else { return }

        /// The planes of one image, split by input channel.
        struct Fill: ParallelTasks {
            let layout: TapPlanes
            let input: UnsafePointer<Float>
            let chunks: Int
            let planes: UnsafeMutablePointer<Float>

            func run(_ chunk: Int) {
                let channels = layout.geometry.inputChannels
                layout.fill(
                    input: input, channels: chunk * channels / chunks..<(chunk + 1) * channels / chunks,
                    into: planes)
            }
        }
        /// One (row tile, column tile) of one image.
        struct Tiles: ParallelTasks {
            let plan: Conv2DPlan
            let layout: TapPlanes
            let packed: PackedMatrix
            let planes: UnsafePointer<Float>
            let bias: UnsafePointer<Float>?
            let residual: UnsafePointer<Float>?
            let output: UnsafeMutablePointer<Float>
            let activation: FusedActivation

            func run(_ task: Int) {
                let g = plan.geometry
                let columns = g.outputHeight * g.outputWidth
                let firstColumn = task % plan.columnTileCount * plan.columnTile
                let firstRow = task / plan.columnTileCount * plan.rowTile
                let columnCount = min(plan.columnTile, columns - firstColumn)
                let rowCount = min(plan.rowTile, g.outputChannels - firstRow)
                if columnCount <= 0 || rowCount <= 0 { return }
                let offset = firstRow * columns + firstColumn
                let last = layout.tapCount - 1
                for tap in 0...last {
                    PackedGemm.multiply(
                        packed, matrix: tap, firstRow: firstRow, rowCount: rowCount, n: columnCount,
                        b: layout.operand(tap: tap, planes: planes) + firstColumn, ldb: layout.planeFloats,
                        c: output + offset, ldc: columns, bias: tap == last ? bias.map { $0 + firstRow } : nil,
                        residual: tap == last ? residual.map { $0 + offset } : nil, residualStride: columns,
                        activation: tap == last ? activation : .none, accumulate: tap > 0)
                }
            }
        }
        let inputImageCount = g.inputChannels * g.inputHeight * g.inputWidth
        let outputImageCount = g.outputChannels * g.outputHeight * g.outputWidth
        let chunks = min(g.inputChannels, 8)
        for image in 0..<g.batch {
            context.parallelFor(
                chunks, Fill(layout: layout, input: input + image * inputImageCount, chunks: chunks, planes: planes))
            context.parallelFor(
                taskCount,
                Tiles(
                    plan: self, layout: layout, packed: packed, planes: UnsafePointer(planes), bias: bias,
                    residual: residual.map { $0 + image * outputImageCount },
                    output: output + image * outputImageCount, activation: activation))
        }
    }
}
