#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Kernels that move elements without looking at their values: transposes, block copies,
/// gathers and fills. They work on byte sizes, so one kernel serves every element type.
public enum Layout {
    /// Side of the square tiles the tiled transpose works in, in elements.
    public static let transposeTile = 32

    /// Copies `blockCount` blocks of `blockByteCount` bytes: block `i` is read at
    /// `source + i · sourceStride` and written at `destination + i · destinationStride` (strides in
    /// bytes). The kernel of `Concat` and `Split`.
    public static func copyBlocks(
        source: UnsafeRawPointer, sourceStride: Int, destination: UnsafeMutableRawPointer, destinationStride: Int,
        blockByteCount: Int, blockCount: Int, context: ComputeContext
    ) {
        guard blockByteCount > 0, blockCount > 0 else { return }
        let taskCount = Swift.max(1, Swift.min(blockCount, blockCount * blockByteCount / (256 * 1024)))
        /// A contiguous range of blocks per task.
        struct Blocks: ParallelTasks {
            let source: UnsafeRawPointer
            let sourceStride: Int
            let destination: UnsafeMutableRawPointer
            let destinationStride: Int
            let blockByteCount: Int
            let blockCount: Int
            let taskCount: Int

            func run(_ task: Int) {
                for block in (task * blockCount / taskCount)..<((task + 1) * blockCount / taskCount) {
                    memcpy(destination + block * destinationStride, source + block * sourceStride, blockByteCount)
                }
            }
        }
        context.parallelFor(
            taskCount,
            Blocks(
                source: source, sourceStride: sourceStride, destination: destination,
                destinationStride: destinationStride, blockByteCount: blockByteCount, blockCount: blockCount,
                taskCount: taskCount))
    }

    /// Fills `count` elements of `elementByteSize` bytes at `destination` with the element at `value`.
    public static func fill(
        _ destination: UnsafeMutableRawPointer, count: Int, elementByteSize: Int, value: UnsafeRawPointer
    ) {
        guard count > 0 else { return }
        switch elementByteSize {
        case 1: memset(destination, Int32(value.load(as: UInt8.self)), count)
        case 2: fillElements(UInt16.self, destination, count, value)
        case 4: fillElements(UInt32.self, destination, count, value)
        case 8: fillElements(UInt64.self, destination, count, value)
        default:
            for index in 0..<count { memcpy(destination + index * elementByteSize, value, elementByteSize) }
        }
    }

    private static func fillElements<Element>(
        _ type: Element.Type, _ destination: UnsafeMutableRawPointer, _ count: Int, _ value: UnsafeRawPointer
    ) {
        let element = value.loadUnaligned(as: Element.self)
        let typed = destination.bindMemory(to: Element.self, capacity: count)
        typed.initialize(repeating: element, count: count)
    }

    /// Gathers along one axis: the source is `[outerCount, axisCount, inner]` with rows of
    /// `innerByteCount` bytes, the destination `[outerCount, indices.count, inner]`. Negative
    /// indices count from the end.
    ///
    /// - Precondition: every index is in `-axisCount..<axisCount` (callers validate untrusted
    ///   indices first and report the bad one).
    public static func gather<Index: BinaryInteger>(
        source: UnsafeRawPointer, destination: UnsafeMutableRawPointer, outerCount: Int, axisCount: Int,
        innerByteCount: Int, indices: UnsafeBufferPointer<Index>, context: ComputeContext
    ) {
        let indexCount = indices.count
        guard outerCount > 0, indexCount > 0, innerByteCount > 0 else { return }
        let rows = outerCount * indexCount
        let taskCount = Swift.max(1, Swift.min(rows, rows * innerByteCount / (256 * 1024)))
        context.parallelFor(
            taskCount,
            GatherRows(
                source: source, destination: destination, axisCount: axisCount, innerByteCount: innerByteCount,
                indices: indices, rows: rows, taskCount: taskCount))
    }

    /// A contiguous range of destination rows of ``gather(source:destination:outerCount:axisCount:innerByteCount:indices:context:)`` per task.
    private struct GatherRows<Index: BinaryInteger>: ParallelTasks {
        let source: UnsafeRawPointer
        let destination: UnsafeMutableRawPointer
        let axisCount: Int
        let innerByteCount: Int
        let indices: UnsafeBufferPointer<Index>
        let rows: Int
        let taskCount: Int

        func run(_ task: Int) {
            let indexCount = indices.count
            for row in (task * rows / taskCount)..<((task + 1) * rows / taskCount) {
                let outer = row / indexCount
                var index = Int(indices[row - outer * indexCount])
                if index < 0 { index += axisCount }
                precondition(index >= 0 && index < axisCount, "gather index out of range")
                memcpy(
                    destination + row * innerByteCount, source + (outer * axisCount + index) * innerByteCount,
                    innerByteCount)
            }
        }
    }

    /// Transposes each of `batchCount` row-major `rowCount × columnCount` matrices into a
    /// `columnCount × rowCount` one, in square tiles so both reads and writes stay in cache.
    public static func transposeTiled(
        source: UnsafeRawPointer, destination: UnsafeMutableRawPointer, batchCount: Int, rowCount: Int,
        columnCount: Int, elementByteSize: Int, context: ComputeContext
    ) {
        guard batchCount > 0, rowCount > 0, columnCount > 0 else { return }
        let tile = transposeTile
        let columnTiles = (columnCount + tile - 1) / tile
        let tasks = batchCount * columnTiles
        let totalBytes = batchCount * rowCount * columnCount * elementByteSize
        var local = context
        if totalBytes < 128 * 1024 { local.threadCount = 1 }
        /// One column tile of one matrix per task.
        struct ColumnTiles: ParallelTasks {
            let source: UnsafeRawPointer
            let destination: UnsafeMutableRawPointer
            let rowCount: Int
            let columnCount: Int
            let columnTiles: Int
            let tile: Int
            let elementByteSize: Int

            func run(_ task: Int) {
                let batch = task / columnTiles
                let columnStart = (task - batch * columnTiles) * tile
                let columnEnd = Swift.min(columnStart + tile, columnCount)
                let matrixBytes = rowCount * columnCount * elementByteSize
                let from = source + batch * matrixBytes
                let to = destination + batch * matrixBytes
                switch elementByteSize {
                case 1: Layout.transposeBlock(UInt8.self, from, to, rowCount, columnCount, columnStart, columnEnd)
                case 2: Layout.transposeBlock(UInt16.self, from, to, rowCount, columnCount, columnStart, columnEnd)
                case 4: Layout.transposeBlock(UInt32.self, from, to, rowCount, columnCount, columnStart, columnEnd)
                case 8: Layout.transposeBlock(UInt64.self, from, to, rowCount, columnCount, columnStart, columnEnd)
                default:
                    for column in columnStart..<columnEnd {
                        for row in 0..<rowCount {
                            memcpy(
                                to + (column * rowCount + row) * elementByteSize,
                                from + (row * columnCount + column) * elementByteSize, elementByteSize)
                        }
                    }
                }
            }
        }
        local.parallelFor(
            tasks,
            ColumnTiles(
                source: source, destination: destination, rowCount: rowCount, columnCount: columnCount,
                columnTiles: columnTiles, tile: tile, elementByteSize: elementByteSize))
    }

    @inline(__always)
    private static func transposeBlock<Element>(
        _ type: Element.Type, _ source: UnsafeRawPointer, _ destination: UnsafeMutableRawPointer, _ rowCount: Int,
        _ columnCount: Int, _ columnStart: Int, _ columnEnd: Int
    ) {
        let size = MemoryLayout<Element>.size
        var rowStart = 0
        while rowStart < rowCount {
            let rowEnd = Swift.min(rowStart + transposeTile, rowCount)
            for column in columnStart..<columnEnd {
                let out = destination + column * rowCount * size
                for row in rowStart..<rowEnd {
                    let value = source.loadUnaligned(
                        fromByteOffset: (row * columnCount + column) * size, as: Element.self)
                    out.storeBytes(of: value, toByteOffset: row * size, as: Element.self)
                }
            }
            rowStart = rowEnd
        }
    }

    /// The plain reference transpose: for every output element, computes its input index.
    /// `permutation[k]` is the input axis that becomes output axis `k` (ONNX `perm`).
    public static func transposeReference(
        source: UnsafeRawPointer, destination: UnsafeMutableRawPointer, shape: [Int], permutation: [Int],
        elementByteSize: Int
    ) {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        let inputStrides = LayoutCopy.rowMajorStrides(shape)
        let outputShape = permutation.map { shape[$0] }
        for outputIndex in 0..<count {
            var remainder = outputIndex
            var inputIndex = 0
            for axis in outputShape.indices.reversed() {
                let coordinate = remainder % outputShape[axis]
                remainder /= outputShape[axis]
                inputIndex += coordinate * inputStrides[permutation[axis]]
            }
            memcpy(
                destination + outputIndex * elementByteSize, source + inputIndex * elementByteSize, elementByteSize)
        }
    }
}

/// A transpose planned once for one shape and permutation: a batched tiled 2-D transpose when the
/// permutation reduces to one (matrices, NCHW↔NHWC), a single block copy when it reduces to the
/// identity, and a general ``LayoutCopy`` otherwise.
public struct TransposeKernel: Sendable {
    private enum Method: Sendable {
        case copy(byteCount: Int)
        case tiled(batchCount: Int, rowCount: Int, columnCount: Int, elementByteSize: Int)
        case general(LayoutCopy)
    }

    private let method: Method

    /// Plans the transpose of a contiguous tensor of `shape` by `permutation` (output axis `k`
    /// is input axis `permutation[k]`).
    ///
    /// - Precondition: `permutation` is a permutation of `0..<shape.count`.
    public init(shape: [Int], permutation: [Int], elementByteSize: Int) {
        precondition(shape.count == permutation.count && Set(permutation) == Set(shape.indices))
        let count = shape.reduce(1, *)
        // Drop size-1 axes, then merge runs of input axes that stay adjacent and in order.
        let kept = permutation.filter { shape[$0] != 1 }
        var groups: [[Int]] = []
        for axis in kept {
            if let last = groups.last?.last, Self.nextKeptAxis(after: last, shape: shape) == axis {
                groups[groups.count - 1].append(axis)
            } else {
                groups.append([axis])
            }
        }
        // Groups in input order give the merged input shape; their order in `groups` is the merged perm.
        let inputOrder = groups.sorted { $0[0] < $1[0] }
        let mergedShape = inputOrder.map { $0.reduce(1) { $0 * shape[$1] } }
        let mergedPermutation = groups.map { group in inputOrder.firstIndex { $0[0] == group[0] } ?? 0 }
        if count == 0 || mergedPermutation == Array(mergedPermutation.indices) {
            method = .copy(byteCount: count * elementByteSize)
        } else if mergedPermutation == [1, 0] {
            method = .tiled(
                batchCount: 1, rowCount: mergedShape[0], columnCount: mergedShape[1], elementByteSize: elementByteSize)
        } else if mergedPermutation == [0, 2, 1] {
            method = .tiled(
                batchCount: mergedShape[0], rowCount: mergedShape[1], columnCount: mergedShape[2],
                elementByteSize: elementByteSize)
        } else {
            let strides = LayoutCopy.rowMajorStrides(mergedShape)
            method = .general(
                LayoutCopy(
                    shape: mergedPermutation.map { mergedShape[$0] },
                    sourceStrides: mergedPermutation.map { strides[$0] },
                    elementByteSize: elementByteSize))
        }
    }

    private static func nextKeptAxis(after axis: Int, shape: [Int]) -> Int? {
        var next = axis + 1
        while next < shape.count, shape[next] == 1 { next += 1 }
        return next < shape.count ? next : nil
    }

    /// Whether the tiled 2-D kernel was chosen (for tests and diagnostics).
    public var isTiled: Bool {
        if case .tiled = method { return true }
        return false
    }

    /// Transposes `source` into `destination` (distinct, each holding the whole tensor).
    public func run(source: UnsafeRawPointer, destination: UnsafeMutableRawPointer, context: ComputeContext) {
        switch method {
        case .copy(let byteCount):
            if byteCount > 0, UnsafeRawPointer(destination) != source { memcpy(destination, source, byteCount) }
        case .tiled(let batchCount, let rowCount, let columnCount, let elementByteSize):
            Layout.transposeTiled(
                source: source, destination: destination, batchCount: batchCount, rowCount: rowCount,
                columnCount: columnCount, elementByteSize: elementByteSize, context: context)
        case .general(let copy):
            copy.run(source: source, destination: destination, context: context)
        }
    }
}
