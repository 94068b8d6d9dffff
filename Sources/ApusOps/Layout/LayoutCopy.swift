#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A planned copy of a box of elements from one buffer to another, the kernel behind `Slice`,
/// `Expand`, `Tile`, `Pad` and the general case of `Transpose`.
///
/// The box has `shape`; the element at index `(i₀, …, iₙ₋₁)` is read at element offset
/// `sourceBase + Σ sourceOffsets[k][iₖ]` and written at `destinationBase + Σ iₖ · destinationStrides[k]`.
/// Per-axis offset tables express strides (also zero and negative), broadcasting, wrapping and
/// reflection alike. Only byte sizes matter, so one kernel serves every element type.
///
/// The initializer simplifies the box once (drops size-1 axes, merges the innermost axes that are
/// contiguous on both sides into one `memcpy` run), so build it at plan time and run it many times.
public struct LayoutCopy: Sendable {
    /// Size of one element in bytes: 1, 2, 4 or 8 (other sizes are copied with `memcpy`).
    public let elementByteSize: Int
    /// The box's dimensions.
    public let shape: [Int]
    /// Per axis, the source element offset of each index along that axis.
    public let sourceOffsets: [[Int]]
    /// Element offset added to every source position.
    public let sourceBase: Int
    /// Per axis, the destination stride in elements.
    public let destinationStrides: [Int]
    /// Element offset added to every destination position.
    public let destinationBase: Int

    private let isEmpty: Bool
    private let outerSizes: [Int]
    private let outerSourceOffsets: [[Int]]
    private let outerDestinationStrides: [Int]
    private let innerSourceOffsets: [Int]
    private let innerDestinationStride: Int
    private let runByteCount: Int
    private let sourceBaseByte: Int
    private let destinationBaseByte: Int

    /// Plans a copy.
    ///
    /// - Parameters:
    ///   - shape: the box's dimensions.
    ///   - sourceOffsets: one table per axis with `shape[k]` element offsets.
    ///   - sourceBase: element offset added to every source position.
    ///   - destinationStrides: destination strides in elements; `nil` means the destination is
    ///     the box itself, contiguous and row-major.
    ///   - destinationBase: element offset added to every destination position.
    ///   - elementByteSize: bytes per element.
    /// - Precondition: the tables match `shape` (callers build them from validated shapes).
    public init(
        shape: [Int], sourceOffsets: [[Int]], sourceBase: Int = 0, destinationStrides: [Int]? = nil,
        destinationBase: Int = 0, elementByteSize: Int
    ) {
        precondition(shape.count == sourceOffsets.count && elementByteSize > 0)
        precondition(zip(shape, sourceOffsets).allSatisfy { $0.0 == $0.1.count })
        let strides = destinationStrides ?? Self.rowMajorStrides(shape)
        precondition(strides.count == shape.count)
        self.elementByteSize = elementByteSize
        self.shape = shape
        self.sourceOffsets = sourceOffsets
        self.sourceBase = sourceBase
        self.destinationStrides = strides
        self.destinationBase = destinationBase

        var sizes: [Int] = []
        var tables: [[Int]] = []
        var destination: [Int] = []
        var base = sourceBase
        for axis in shape.indices where shape[axis] != 1 {
            sizes.append(shape[axis])
            tables.append(sourceOffsets[axis])
            destination.append(strides[axis])
        }
        for axis in shape.indices where shape[axis] == 1 { base += sourceOffsets[axis][0] }
        isEmpty = shape.contains(0)

        // Fold innermost axes into one contiguous run while both sides stay contiguous.
        var run = 1
        while !isEmpty, let size = sizes.last, let table = tables.last, destination.last == run,
            Self.isAffine(table, step: run)
        {
            base += table[0]
            run *= size
            sizes.removeLast()
            tables.removeLast()
            destination.removeLast()
        }
        runByteCount = run * elementByteSize
        if isEmpty || sizes.isEmpty {
            innerSourceOffsets = [0]
            innerDestinationStride = 0
        } else {
            innerSourceOffsets = (tables.removeLast()).map { $0 * elementByteSize }
            innerDestinationStride = destination.removeLast() * elementByteSize
            sizes.removeLast()
        }
        outerSizes = sizes
        outerSourceOffsets = tables.map { $0.map { $0 * elementByteSize } }
        outerDestinationStrides = destination.map { $0 * elementByteSize }
        sourceBaseByte = base * elementByteSize
        destinationBaseByte = destinationBase * elementByteSize
    }

    /// Plans a copy whose source position along each axis is `start + i · stride`.
    public init(
        shape: [Int], sourceStrides: [Int], sourceBase: Int = 0, destinationStrides: [Int]? = nil,
        destinationBase: Int = 0, elementByteSize: Int
    ) {
        precondition(shape.count == sourceStrides.count)
        let tables = zip(shape, sourceStrides).map { size, stride in (0..<size).map { $0 * stride } }
        self.init(
            shape: shape, sourceOffsets: tables, sourceBase: sourceBase, destinationStrides: destinationStrides,
            destinationBase: destinationBase, elementByteSize: elementByteSize)
    }

    /// Row-major strides in elements of a contiguous tensor of `shape`.
    public static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in shape.indices.reversed() {
            strides[axis] = running
            running *= Swift.max(shape[axis], 1)
        }
        return strides
    }

    private static func isAffine(_ table: [Int], step: Int) -> Bool {
        guard let first = table.first else { return false }
        for index in table.indices where table[index] != first + index * step { return false }
        return true
    }

    /// Copies from `source` to `destination`, splitting the work by size only (a copy has no
    /// rounding, so any split gives the same bytes).
    public func run(source: UnsafeRawPointer, destination: UnsafeMutableRawPointer, context: ComputeContext) {
        if isEmpty { return }
        let outerCount = outerSizes.reduce(1, *)
        let totalBytes = outerCount * innerSourceOffsets.count * runByteCount
        let taskCount = Swift.max(1, Swift.min(outerCount, totalBytes / (256 * 1024)))
        let rank = outerSizes.count
        /// A contiguous range of outer positions per task.
        struct Rows: ParallelTasks {
            let plan: LayoutCopy
            let source: UnsafeRawPointer
            let destination: UnsafeMutableRawPointer
            let sizes: UnsafeBufferPointer<Int>
            let strides: UnsafeBufferPointer<Int>
            let inner: UnsafeBufferPointer<Int>
            let outerCount: Int
            let taskCount: Int
            let rank: Int

            func run(_ task: Int) {
                let start = task * outerCount / taskCount
                let end = (task + 1) * outerCount / taskCount
                withUnsafeTemporaryAllocation(of: Int.self, capacity: Swift.max(rank, 1)) { index in
                    var remainder = start
                    for axis in (0..<rank).reversed() {
                        index[axis] = remainder % sizes[axis]
                        remainder /= sizes[axis]
                    }
                    for _ in start..<end {
                        var sourceByte = plan.sourceBaseByte
                        var destinationByte = plan.destinationBaseByte
                        for axis in 0..<rank {
                            sourceByte += plan.outerSourceOffsets[axis][index[axis]]
                            destinationByte += index[axis] * strides[axis]
                        }
                        plan.copyRow(
                            source: source + sourceByte, destination: destination + destinationByte,
                            inner: inner)
                        var axis = rank - 1
                        while axis >= 0 {
                            index[axis] += 1
                            if index[axis] < sizes[axis] { break }
                            index[axis] = 0
                            axis -= 1
                        }
                    }
                }
            }
        }
        outerSizes.withUnsafeBufferPointer { sizes in
            outerDestinationStrides.withUnsafeBufferPointer { strides in
                innerSourceOffsets.withUnsafeBufferPointer { inner in
                    context.parallelFor(
                        taskCount,
                        Rows(
                            plan: self, source: source, destination: destination, sizes: sizes, strides: strides,
                            inner: inner, outerCount: outerCount, taskCount: taskCount, rank: rank))
                }
            }
        }
    }

    @inline(__always)
    private func copyRow(
        source: UnsafeRawPointer, destination: UnsafeMutableRawPointer, inner: UnsafeBufferPointer<Int>
    ) {
        let stride = innerDestinationStride
        if runByteCount == elementByteSize {
            switch elementByteSize {
            case 1: Self.copyElements(UInt8.self, source, destination, inner, stride)
            case 2: Self.copyElements(UInt16.self, source, destination, inner, stride)
            case 4: Self.copyElements(UInt32.self, source, destination, inner, stride)
            case 8: Self.copyElements(UInt64.self, source, destination, inner, stride)
            default:
                for j in 0..<inner.count { memcpy(destination + j * stride, source + inner[j], runByteCount) }
            }
        } else {
            for j in 0..<inner.count { memcpy(destination + j * stride, source + inner[j], runByteCount) }
        }
    }

    @inline(__always)
    private static func copyElements<Element>(
        _ type: Element.Type, _ source: UnsafeRawPointer, _ destination: UnsafeMutableRawPointer,
        _ offsets: UnsafeBufferPointer<Int>, _ stride: Int
    ) {
        for j in 0..<offsets.count {
            let value = source.loadUnaligned(fromByteOffset: offsets[j], as: Element.self)
            destination.storeBytes(of: value, toByteOffset: j * stride, as: Element.self)
        }
    }

    /// The plain reference: visits every element of the box in row-major order with no
    /// simplification. Tests compare ``run(source:destination:context:)`` against it.
    public func runReference(source: UnsafeRawPointer, destination: UnsafeMutableRawPointer) {
        let count = shape.reduce(1, *)
        if count == 0 { return }
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            var sourceElement = sourceBase
            var destinationElement = destinationBase
            for axis in shape.indices {
                sourceElement += sourceOffsets[axis][index[axis]]
                destinationElement += index[axis] * destinationStrides[axis]
            }
            memcpy(
                destination + destinationElement * elementByteSize, source + sourceElement * elementByteSize,
                elementByteSize)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
