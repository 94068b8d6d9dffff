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

        let tiles = Conv2DPlan.tiling(geometry: geometry)
        self.rowTile = tiles.rowTile
        self.rowTileCount = (max(1, geometry.outputChannelsPerGroup) + tiles.rowTile - 1) / tiles.rowTile
        self.columnTile = tiles.columnTile
        self.columnTileCount = tiles.columnTileCount
    }

    /// The sgemm tiles of one image and group.
    ///
    /// OpenBLAS packs the weights (A) again for every call, and its kernels are far slower on
    /// narrow column blocks, so tiles are as large as possible: one call per image and group
    /// unless the work is large enough to be worth two or four parts (for two threads). The tile
    /// sizes depend only on the geometry, never on the thread count.
    static func tiling(geometry g: Conv2DGeometry) -> (rowTile: Int, columnTile: Int, columnTileCount: Int) {
        let columns = max(1, g.outputHeight * g.outputWidth)
        let rows = max(1, g.outputChannelsPerGroup)
        let work = rows * columns * max(1, g.reductionLength)
        // Under ~1 M multiply-adds a split costs more than it gains.
        let parts = work < 1 << 20 ? 1 : (g.groups >= 4 ? 1 : (columns >= 2048 && work >= 1 << 24 ? 4 : 2))
        var columnParts = 1
        var rowParts = 1
        if parts > 1 {
            if columns >= 256 * parts {
                columnParts = parts
            } else if rows >= 32 * parts {
                rowParts = parts
            } else if columns >= 512 {
                columnParts = 2
            } else if rows >= 64 {
                rowParts = 2
            }
        }
        // Tiles rounded to 16 (one AVX-512 vector of floats).
        var columnTile = columns
        if columnParts > 1 { columnTile = min(columns, ((columns + columnParts - 1) / columnParts + 15) / 16 * 16) }
        var rowTile = rows
        if rowParts > 1 { rowTile = min(rows, ((rows + rowParts - 1) / rowParts + 15) / 16 * 16) }
        return (rowTile, columnTile, (columns + columnTile - 1) / columnTile)
    }

    /// Scratch bytes for one concurrently running depthwise task.
    var slotByteCount: Int {
        let g = geometry
        switch algorithm {
        case .pointwise, .im2col: return 0
        case .depthwise:
            let layout = DepthwiseLayout(geometry: g)
            return layout.planeElementCount * MemoryLayout<Float>.stride
        }
    }

    /// Bytes of the column matrix of one image (all groups) for the im2col path.
    var columnMatrixByteCount: Int {
        guard algorithm == .im2col else { return 0 }
        let g = geometry
        return g.groups * g.reductionLength * g.outputHeight * g.outputWidth * MemoryLayout<Float>.stride
    }

    /// The workspace ``run(input:weights:bias:residual:output:activation:context:)`` needs when
    /// it may use `threadCount` threads: the column matrix of one image (im2col), or one scratch
    /// plane per concurrently running task (depthwise).
    public func workspaceByteCount(threadCount: Int) -> Int {
        if algorithm == .im2col { return (columnMatrixByteCount + 63) / 64 * 64 }
        let slot = slotByteCount
        if slot == 0 { return 0 }
        // Round each slot to 64 bytes so that every slot starts aligned.
        return (slot + 63) / 64 * 64 * max(1, min(threadCount, taskCount))
    }

    /// The number of independent tasks of one run (of one image for the sgemm paths).
    var taskCount: Int {
        switch algorithm {
        case .depthwise: geometry.batch * geometry.outputChannels
        case .pointwise, .im2col: geometry.groups * rowTileCount * columnTileCount
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
        switch algorithm {
        case .depthwise:
            runDepthwise(
                input: input, weights: weights, bias: bias, residual: residual, output: output, activation: activation,
                context: context)
        case .pointwise, .im2col:
            let g = geometry
            var columnMatrix: UnsafeMutablePointer<Float>? = nil
            if algorithm == .im2col {
                let needed = columnMatrixByteCount
                precondition(
                    context.workspace != nil && context.workspaceByteCount >= needed,
                    "convolution needs \(needed) workspace bytes, has \(context.workspaceByteCount)")
                columnMatrix = context.workspace?.assumingMemoryBound(to: Float.self)
            }
            nonisolated(unsafe) let matrix = columnMatrix
            let inputImageCount = g.inputChannels * g.inputHeight * g.inputWidth
            let outputImageCount = g.outputChannels * g.outputHeight * g.outputWidth
            for image in 0..<g.batch {
                let inputImage = input + image * inputImageCount
                let outputImage = output + image * outputImageCount
                let residualImage = residual.map { $0 + image * outputImageCount }
                if let matrix {
                    // The whole column matrix first (pure copies, split by input channel), so that
                    // each sgemm sees every column of its tile at once.
                    let channels = g.inputChannels
                    let rowsPerChannel = g.kernelHeight * g.kernelWidth
                    let columns = g.outputHeight * g.outputWidth
                    let chunks = min(channels, 8)
                    context.parallelFor(chunks) { chunk in
                        let first = chunk * channels / chunks
                        let last = (chunk + 1) * channels / chunks
                        Im2col.fill(
                            geometry: g, input: inputImage, channels: first..<last,
                            into: matrix + first * rowsPerChannel * columns)
                    }
                }
                context.parallelFor(tasks) { task in
                    runGemmTile(
                        task: task, input: inputImage, columnMatrix: matrix.map { UnsafePointer($0) },
                        weights: weights, bias: bias, residual: residualImage, output: outputImage,
                        activation: activation)
                }
            }
        }
    }

    /// The depthwise path: one (image, channel) per task, each with its own padded plane.
    private func runDepthwise(
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        context: ComputeContext
    ) {
        let tasks = taskCount
        let slot = (slotByteCount + 63) / 64 * 64
        precondition(
            context.workspace != nil && context.workspaceByteCount >= slot,
            "convolution needs \(slot) workspace bytes, has \(context.workspaceByteCount)")
        guard let base = context.workspace else { return }
        let workers = min(context.threadCount, tasks, context.workspaceByteCount / slot)
        nonisolated(unsafe) let scratchBase = base
        let taskContext = ComputeContext(threadCount: workers)
        taskContext.parallelFor(workers) { worker in
            let scratch = (scratchBase + worker * slot).assumingMemoryBound(to: Float.self)
            DepthwiseConv2D.clearPlane(layout: DepthwiseLayout(geometry: geometry), scratch: scratch)
            for task in (worker * tasks / workers)..<((worker + 1) * tasks / workers) {
                runDepthwise(
                    task: task, input: input, weights: weights, bias: bias, residual: residual, output: output,
                    activation: activation, scratch: scratch)
            }
        }
    }

    /// One (group, row tile, column tile) of one image for the sgemm-based paths.
    private func runGemmTile(
        task: Int, input inputImage: UnsafePointer<Float>, columnMatrix: UnsafePointer<Float>?,
        weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: FusedActivation
    ) {
        let g = geometry
        var rest = task
        let columnTileIndex = rest % columnTileCount
        rest /= columnTileCount
        let rowTileIndex = rest % rowTileCount
        let group = rest / rowTileCount

        let columns = g.outputHeight * g.outputWidth
        let firstColumn = columnTileIndex * columnTile
        let columnCount = min(columnTile, columns - firstColumn)
        let mPerGroup = g.outputChannelsPerGroup
        let firstRow = rowTileIndex * rowTile
        let rowCount = min(rowTile, mPerGroup - firstRow)
        if columnCount <= 0 || rowCount <= 0 { return }
        let outputChannel = group * mPerGroup + firstRow
        let reduction = g.reductionLength
        let outputOffset = outputChannel * columns + firstColumn
        let tileOutput = output + outputOffset

        let b: UnsafePointer<Float>
        if let columnMatrix {
            b = columnMatrix + group * reduction * columns + firstColumn
        } else {
            b = inputImage + group * g.inputChannelsPerGroup * g.inputHeight * g.inputWidth + firstColumn
        }
        BLAS.sgemm(
            transposeA: false, transposeB: false, m: rowCount, n: columnCount, k: reduction, alpha: 1,
            a: weights + outputChannel * reduction, lda: reduction, b: b, ldb: columns, beta: 0, c: tileOutput,
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

/// Copies the receptive fields of every output position into a [reduction × columns] matrix.
enum Im2col {
    /// Fills `buffer[k][j]` for `k` over (input channel in `channels`, ky, kx) and `j` over all
    /// output positions (row-major over outH × outW); `input` is the image's first channel.
    static func fill(
        geometry g: Conv2DGeometry, input: UnsafePointer<Float>, channels: Range<Int>,
        into buffer: UnsafeMutablePointer<Float>
    ) {
        let outW = g.outputWidth
        let outH = g.outputHeight
        let inH = g.inputHeight
        let inW = g.inputWidth
        let columnCount = outH * outW
        var row = buffer
        for channel in channels {
            let plane = input + channel * inH * inW
            for ky in 0..<g.kernelHeight {
                for kx in 0..<g.kernelWidth {
                    let xOffset = kx * g.dilationWidth - g.padLeft
                    // Output columns whose input column lies inside the image: lo ..< hi.
                    let lo = min(outW, xOffset >= 0 ? 0 : (-xOffset + g.strideWidth - 1) / g.strideWidth)
                    let hi = inW - 1 - xOffset < 0 ? 0 : min(outW, (inW - 1 - xOffset) / g.strideWidth + 1)
                    for oy in 0..<outH {
                        let dest = row + oy * outW
                        let iy = oy * g.strideHeight - g.padTop + ky * g.dilationHeight
                        if iy < 0 || iy >= inH || lo >= hi {
                            dest.update(repeating: 0, count: outW)
                            continue
                        }
                        let source = plane + iy * inW + xOffset
                        if lo > 0 { dest.update(repeating: 0, count: lo) }
                        if g.strideWidth == 1 {
                            (dest + lo).update(from: source + lo, count: hi - lo)
                        } else {
                            let s = g.strideWidth
                            for ox in lo..<hi { dest[ox] = source[ox * s] }
                        }
                        if hi < outW { (dest + hi).update(repeating: 0, count: outW - hi) }
                    }
                    row += columnCount
                }
            }
        }
    }
}
