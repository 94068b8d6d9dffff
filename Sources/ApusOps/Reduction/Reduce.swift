#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A float32 reduction (ONNX `ReduceSum`, `ReduceMean`, …).
public enum ReduceOperation: Sendable, Equatable, CaseIterable {
    case sum, mean, maximum, minimum, product, sumSquare, l1, l2

    /// The value of the reduction over no elements (`mean` gives NaN, as 0/0).
    public var identity: Float {
        switch self {
        case .sum, .mean, .sumSquare, .l1, .l2: 0
        case .maximum: -.infinity
        case .minimum: .infinity
        case .product: 1
        }
    }

    /// Folds one element into an accumulator.
    @inline(__always)
    public func combine(_ accumulator: Float, _ x: Float) -> Float {
        switch self {
        case .sum, .mean: accumulator + x
        case .maximum: nanPropagatingMax(accumulator, x)
        case .minimum: nanPropagatingMin(accumulator, x)
        case .product: accumulator * x
        case .sumSquare, .l2: accumulator + x * x
        case .l1: accumulator + Swift.abs(x)
        }
    }

    /// The result from the accumulator of `count` elements.
    @inline(__always)
    public func finish(_ accumulator: Float, count: Int) -> Float {
        switch self {
        case .mean: accumulator / Float(count)
        case .l2: accumulator.squareRoot()
        default: accumulator
        }
    }
}

/// Reduces `input` (row-major, `dimensions`) over `axes` into `output`, whose element count is
/// the product of the kept dimensions (keepdims does not change the memory layout).
///
/// The accumulation order depends only on the shape: a reduction over one contiguous block of
/// axes runs as `outer × reduced × inner`; innermost reductions sum 16 interleaved partial sums
/// that are then added in a fixed order. Other axis patterns walk the input in row-major order.
///
/// - Parameter axes: distinct axes in `0..<dimensions.count`, any order.
public func reduceFloat32(
    _ operation: ReduceOperation, _ input: UnsafePointer<Float>, dimensions: [Int], axes: [Int],
    output: UnsafeMutablePointer<Float>, context: ComputeContext
) {
    let reducedSet = Set(axes)
    var reducedCount = 1
    for axis in axes { reducedCount *= dimensions[axis] }
    // Merge neighbouring axes of the same kind, skipping size-1 axes (they change nothing).
    var blocks = [(size: Int, reduced: Bool)]()
    for (axis, dimension) in dimensions.enumerated() where dimension != 1 {
        let reduced = reducedSet.contains(axis)
        if let last = blocks.last, last.reduced == reduced {
            blocks[blocks.count - 1].size = last.size * dimension
        } else {
            blocks.append((dimension, reduced))
        }
    }
    let reducedBlocks = blocks.filter(\.reduced).count
    let outputCount = blocks.filter { !$0.reduced }.reduce(1) { $0 * $1.size }
    if outputCount == 0 { return }
    if reducedBlocks == 0 || reducedCount == 0 {
        // Nothing to reduce (or an empty reduction): each output is one element or the identity.
        for index in 0..<outputCount {
            output[index] = operation.finish(
                reducedCount == 0 ? operation.identity : operation.combine(operation.identity, input[index]),
                count: reducedCount)
        }
        return
    }
    guard reducedBlocks == 1, let reducedIndex = blocks.firstIndex(where: \.reduced) else {
        reduceFloat32Reference(operation, input, dimensions: dimensions, axes: axes, output: output)
        return
    }
    let outer = blocks[..<reducedIndex].reduce(1) { $0 * $1.size }
    let inner = blocks[(reducedIndex + 1)...].reduce(1) { $0 * $1.size }
    let rowsPerTask = max(1, BroadcastLayout.chunkElementCount / (reducedCount * inner))
    /// A range of rows per task.
    struct Rows: ParallelRanges {
        let operation: ReduceOperation
        let input: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>
        let inner: Int
        let reducedCount: Int

        func run(_ rows: Range<Int>) {
            for row in rows {
                let source = input + row * reducedCount * inner
                if inner == 1 {
                    output[row] = reduceContiguous(operation, source, reducedCount)
                } else {
                    let destination = output + row * inner
                    destination.update(repeating: operation.identity, count: inner)
                    for r in 0..<reducedCount {
                        let slice = source + r * inner
                        for j in 0..<inner { destination[j] = operation.combine(destination[j], slice[j]) }
                    }
                    for j in 0..<inner { destination[j] = operation.finish(destination[j], count: reducedCount) }
                }
            }
        }
    }
    context.parallelFor(
        outer, blockSize: rowsPerTask,
        Rows(operation: operation, input: input, output: output, inner: inner, reducedCount: reducedCount))
}

/// Reduces `count` contiguous elements with 16 interleaved accumulators combined in a fixed order.
@inline(__always)
func reduceContiguous(_ operation: ReduceOperation, _ source: UnsafePointer<Float>, _ count: Int) -> Float {
    var lanes = SIMD16<Float>(repeating: operation.identity)
    var index = 0
    while index + 16 <= count {
        for lane in 0..<16 { lanes[lane] = operation.combine(lanes[lane], source[index + lane]) }
        index += 16
    }
    var accumulator = operation.identity
    for lane in 0..<16 {
        switch operation {
        case .maximum, .minimum, .product: accumulator = operation.combine(accumulator, lanes[lane])
        default: accumulator += lanes[lane]
        }
    }
    while index < count {
        accumulator = operation.combine(accumulator, source[index])
        index += 1
    }
    return operation.finish(accumulator, count: count)
}

/// The plain reference for ``reduceFloat32(_:_:dimensions:axes:output:context:)``: visits the
/// input in row-major order and folds each element into its output.
public func reduceFloat32Reference(
    _ operation: ReduceOperation, _ input: UnsafePointer<Float>, dimensions: [Int], axes: [Int],
    output: UnsafeMutablePointer<Float>
) {
    let rank = dimensions.count
    let reducedSet = Set(axes)
    let kept = (0..<rank).filter { !reducedSet.contains($0) }
    let outputCount = kept.reduce(1) { $0 * dimensions[$1] }
    let reducedCount = axes.reduce(1) { $0 * dimensions[$1] }
    for index in 0..<outputCount { output[index] = operation.identity }
    let count = dimensions.reduce(1, *)
    var multiIndex = [Int](repeating: 0, count: rank)
    for index in 0..<count {
        var remainder = index
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            multiIndex[axis] = remainder % dimensions[axis]
            remainder /= dimensions[axis]
        }
        let outputIndex = kept.reduce(0) { $0 * dimensions[$1] + multiIndex[$1] }
        output[outputIndex] = operation.combine(output[outputIndex], input[index])
    }
    for index in 0..<outputCount { output[index] = operation.finish(output[index], count: reducedCount) }
}
