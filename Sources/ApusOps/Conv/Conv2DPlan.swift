/// A 2-D convolution with its algorithm and work split chosen once, at plan time.
///
/// The output of each image is cut into tiles (groups × output-channel rows × spatial columns)
/// whose sizes depend only on the geometry, and each tile is one single-threaded sgemm followed
/// by the fused epilogue while the tile is in cache; so the result is bitwise the same for any
/// thread count.
public struct Conv2DPlan: Sendable {
    /// How the convolution is computed.
    public enum Algorithm: Sendable, Hashable {
        /// 1×1, stride 1, no padding: `W[M×C] × X[C×HW]` straight from the input.
        case pointwise
        /// im2col of a column tile into the workspace, then sgemm.
        case im2col
        /// One channel at a time with a SIMD kernel (groups == C_in == C_out).
        case depthwise
    }

    /// The sizes.
    public let geometry: Conv2DGeometry
    /// The chosen algorithm.
    public let algorithm: Algorithm
    /// Output channels per row tile (within a group).
    let rowTile: Int
    /// Row tiles per group.
    let rowTileCount: Int
    /// Output positions per column tile.
    let columnTile: Int
    /// Column tiles per image.
    let columnTileCount: Int

    /// Plans `geometry`; `algorithm` overrides the choice (tests use it to force a path that the
    /// geometry allows: ``Algorithm/pointwise`` needs ``Conv2DGeometry/isPointwise``,
    /// ``Algorithm/depthwise`` needs ``Conv2DGeometry/isDepthwise``).
    public init(geometry: Conv2DGeometry, algorithm: Algorithm? = nil) {
        self.geometry = geometry
        let chosen: Algorithm
        if let algorithm {
            chosen = algorithm
        } else if geometry.isDepthwise {
            chosen = .depthwise
        } else if geometry.isPointwise {
            chosen = .pointwise
        } else {
            chosen = .im2col
        }
        precondition(chosen != .pointwise || geometry.isPointwise, "pointwise path on a non-pointwise convolution")
        precondition(chosen != .depthwise || geometry.isDepthwise, "depthwise path on a non-depthwise convolution")
        self.algorithm = chosen

        let columns = geometry.outputHeight * geometry.outputWidth
        let reduction = max(1, geometry.reductionLength)
        // Column tiles: multiples of 64 columns; for im2col, small enough that the tile's column
        // buffer (reduction × columns floats) stays near 1 MiB, in cache for the sgemm.
        var tile = max(64, (columns + 3) / 4 / 64 * 64)
        if chosen == .im2col { tile = min(tile, max(64, (262_144 / reduction) / 64 * 64)) }
        tile = min(tile, 1024)
        if columns <= tile { tile = max(columns, 1) }
        let columnTiles = max(1, (columns + tile - 1) / tile)
        // Few column tiles (small feature maps): also split output channels, so two threads have
        // work; at least 32 channels per tile keep the sgemm efficient.
        let rowsPerGroup = max(1, geometry.outputChannelsPerGroup)
        var rowTiles = 1
        let perImage = columnTiles * geometry.groups
        if perImage < 4 {
            rowTiles = max(1, min((4 + perImage - 1) / perImage, rowsPerGroup / 32))
        }
        let rows = (rowsPerGroup + rowTiles - 1) / rowTiles
        self.rowTile = rows
        self.rowTileCount = (rowsPerGroup + rows - 1) / rows
        self.columnTile = tile
        self.columnTileCount = columnTiles
    }

    /// Scratch bytes for one concurrently running task.
    var slotByteCount: Int {
        let g = geometry
        switch algorithm {
        case .pointwise: return 0
        case .im2col: return g.reductionLength * columnTile * MemoryLayout<Float>.stride
        case .depthwise:
            let layout = DepthwiseLayout(geometry: g)
            return layout.planeElementCount * MemoryLayout<Float>.stride
        }
    }

    /// The workspace ``run(input:weights:bias:residual:output:activation:context:)`` needs when
    /// it may use `threadCount` threads: one scratch slot per concurrently running task.
    public func workspaceByteCount(threadCount: Int) -> Int {
        let slot = slotByteCount
        if slot == 0 { return 0 }
        // Round each slot to 64 bytes so that every slot starts aligned.
        return (slot + 63) / 64 * 64 * max(1, min(threadCount, taskCount))
    }

    /// The number of independent tasks of one run.
    var taskCount: Int {
        switch algorithm {
        case .depthwise: geometry.batch * geometry.outputChannels
        case .pointwise, .im2col: geometry.batch * geometry.groups * rowTileCount * columnTileCount
        }
    }

    /// Computes `output = activation(conv(input, weights) + bias + residual)`.
    ///
    /// - Parameters:
    ///   - input: N × C × H × W.
    ///   - weights: M × (C / groups) × kH × kW (row-major, as ONNX stores them).
    ///   - bias: M values or `nil`.
    ///   - residual: a tensor of the output's shape or `nil`.
    ///   - output: N × M × outH × outW.
    ///   - context: threads, and a workspace of at least ``workspaceByteCount(threadCount:)`` for
    ///     one thread.
    public func run(
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        context: ComputeContext
    ) {
        let tasks = taskCount
        if tasks == 0 || geometry.outputHeight * geometry.outputWidth == 0 { return }
        let slot = (slotByteCount + 63) / 64 * 64
        var workers = min(context.threadCount, tasks)
        var workspace = UnsafeMutableRawPointer(bitPattern: 64)
        if slot > 0 {
            precondition(
                context.workspace != nil && context.workspaceByteCount >= slot,
                "convolution needs \(slot) workspace bytes, has \(context.workspaceByteCount)")
            workers = min(workers, context.workspaceByteCount / slot)
            workspace = context.workspace
        }
        guard let base = workspace else { return }
        nonisolated(unsafe) let scratchBase = base
        let taskContext = ComputeContext(threadCount: workers)
        taskContext.parallelFor(workers) { worker in
            let scratch = (scratchBase + worker * slot).assumingMemoryBound(to: Float.self)
            for task in (worker * tasks / workers)..<((worker + 1) * tasks / workers) {
                switch algorithm {
                case .depthwise:
                    runDepthwise(
                        task: task, input: input, weights: weights, bias: bias, residual: residual, output: output,
                        activation: activation, scratch: scratch)
                case .pointwise, .im2col:
                    runGemmTile(
                        task: task, input: input, weights: weights, bias: bias, residual: residual, output: output,
                        activation: activation, scratch: scratch)
                }
            }
        }
    }

    /// One (image, group, row tile, column tile) of the sgemm-based paths.
    private func runGemmTile(
        task: Int, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let g = geometry
        var rest = task
        let columnTileIndex = rest % columnTileCount
        rest /= columnTileCount
        let rowTileIndex = rest % rowTileCount
        rest /= rowTileCount
        let group = rest % g.groups
        let image = rest / g.groups

        let columns = g.outputHeight * g.outputWidth
        let firstColumn = columnTileIndex * columnTile
        let columnCount = min(columnTile, columns - firstColumn)
        let mPerGroup = g.outputChannelsPerGroup
        let firstRow = rowTileIndex * rowTile
        let rowCount = min(rowTile, mPerGroup - firstRow)
        if columnCount <= 0 || rowCount <= 0 { return }
        let outputChannel = group * mPerGroup + firstRow
        let reduction = g.reductionLength
        let inputImage = input + image * g.inputChannels * g.inputHeight * g.inputWidth
        let groupInput = inputImage + group * g.inputChannelsPerGroup * g.inputHeight * g.inputWidth
        let outputOffset = (image * g.outputChannels + outputChannel) * columns + firstColumn
        let tileOutput = output + outputOffset

        let b: UnsafePointer<Float>
        let ldb: Int
        if algorithm == .pointwise {
            b = groupInput + firstColumn
            ldb = columns
        } else {
            Im2col.fill(
                geometry: g, groupInput: groupInput, firstColumn: firstColumn, columnCount: columnCount,
                into: scratch)
            b = UnsafePointer(scratch)
            ldb = columnCount
        }
        BLAS.sgemm(
            transposeA: false, transposeB: false, m: rowCount, n: columnCount, k: reduction, alpha: 1,
            a: weights + outputChannel * reduction, lda: reduction, b: b, ldb: ldb, beta: 0, c: tileOutput,
            ldc: columns)
        Epilogue.apply(
            to: tileOutput, rowCount: rowCount, columnCount: columnCount, rowStride: columns,
            bias: bias.map { $0 + outputChannel }, residual: residual.map { $0 + outputOffset },
            residualRowStride: columns, activation: activation)
    }

    /// One (image, channel) of the depthwise path.
    private func runDepthwise(
        task: Int, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let g = geometry
        let channel = task % g.outputChannels
        let plane = g.outputHeight * g.outputWidth
        DepthwiseConv2D.runChannel(
            layout: DepthwiseLayout(geometry: g), input: input + task * g.inputHeight * g.inputWidth,
            weights: weights + channel * g.kernelHeight * g.kernelWidth, bias: bias?[channel] ?? 0,
            residual: residual.map { $0 + task * plane }, output: output + task * plane, activation: activation,
            scratch: scratch)
    }
}

/// Copies the receptive fields of a tile of output positions into a [reduction × columns] matrix.
enum Im2col {
    /// Fills `buffer[k][j]` for `k` over (input channel of the group, ky, kx) and `j` over output
    /// positions `firstColumn ..< firstColumn + columnCount` (row-major over outH × outW).
    static func fill(
        geometry g: Conv2DGeometry, groupInput: UnsafePointer<Float>, firstColumn: Int, columnCount: Int,
        into buffer: UnsafeMutablePointer<Float>
    ) {
        let outW = g.outputWidth
        let inH = g.inputHeight
        let inW = g.inputWidth
        let endColumn = firstColumn + columnCount
        var row = buffer
        for channel in 0..<g.inputChannelsPerGroup {
            let plane = groupInput + channel * inH * inW
            for ky in 0..<g.kernelHeight {
                for kx in 0..<g.kernelWidth {
                    let xOffset = kx * g.dilationWidth - g.padLeft
                    // Output columns whose input column lies inside the image: lo ..< hi.
                    let lo = xOffset >= 0 ? 0 : (-xOffset + g.strideWidth - 1) / g.strideWidth
                    let hi = inW - 1 - xOffset < 0 ? 0 : min(outW, (inW - 1 - xOffset) / g.strideWidth + 1)
                    var position = firstColumn
                    var j = 0
                    while position < endColumn {
                        let oy = position / outW
                        let ox0 = position - oy * outW
                        let ox1 = min(outW, ox0 + endColumn - position)
                        let iy = oy * g.strideHeight - g.padTop + ky * g.dilationHeight
                        if iy < 0 || iy >= inH || lo >= hi {
                            (row + j).update(repeating: 0, count: ox1 - ox0)
                        } else {
                            let source = plane + iy * inW + xOffset
                            let a = min(max(ox0, lo), ox1)
                            let b = max(min(ox1, hi), a)
                            if a > ox0 { (row + j).update(repeating: 0, count: a - ox0) }
                            let dest = row + j - ox0
                            if g.strideWidth == 1 {
                                (dest + a).update(from: source + a, count: b - a)
                            } else {
                                let s = g.strideWidth
                                for ox in a..<b { dest[ox] = source[ox * s] }
                            }
                            if ox1 > b { (row + j + (b - ox0)).update(repeating: 0, count: ox1 - b) }
                        }
                        j += ox1 - ox0
                        position += ox1 - ox0
                    }
                    row += columnCount
                }
            }
        }
    }
}
