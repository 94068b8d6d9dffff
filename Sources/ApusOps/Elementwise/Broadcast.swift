/// How the elements of up to three operands map onto the elements of a broadcast output
/// (numpy multidirectional broadcasting, as ONNX defines it).
///
/// The output is walked as `outerCount` rows of `innerCount` contiguous elements. Inside a row each
/// operand either advances one element per output element (inner stride 1) or repeats one element
/// (inner stride 0), so a row is always a vector–vector, vector–scalar or scalar–scalar loop:
/// `[N, C, H, W] + [C, 1, 1]` becomes `N·C` rows of `H·W` with the second operand constant per row.
/// Adjacent dimensions that broadcast alike are merged first, so same-shape operands give a single
/// row of every element.
public struct BroadcastLayout: Sendable, Equatable {
    /// The broadcast output shape.
    public let outputDimensions: [Int]
    /// The number of output elements.
    public let elementCount: Int
    /// The merged outer dimensions (the row index space), outermost first.
    public let outerDimensions: [Int]
    /// For each operand, its element stride along each of ``outerDimensions`` (0 where broadcast).
    public let outerStrides: [[Int]]
    /// The number of rows, the product of ``outerDimensions``.
    public let outerCount: Int
    /// The number of contiguous output elements in one row.
    public let innerCount: Int
    /// For each operand, 1 if it advances along a row and 0 if it repeats one element.
    public let innerStrides: [Int]

    /// The broadcast of `shapes`, or `nil` when two of them have a dimension that differs and is
    /// not 1.
    public static func broadcastDimensions(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            let offset = rank - shape.count
            for (axis, dimension) in shape.enumerated() {
                let current = result[offset + axis]
                if current == dimension || dimension == 1 { continue }
                if current == 1 {
                    result[offset + axis] = dimension
                } else {
                    return nil
                }
            }
        }
        return result
    }

    /// Lays out the broadcast of `operandDimensions` (one to three operands).
    ///
    /// - Returns: `nil` when the shapes do not broadcast together.
    public init?(operandDimensions: [[Int]]) {
        precondition((1...3).contains(operandDimensions.count), "BroadcastLayout takes 1 to 3 operands")
        guard let output = Self.broadcastDimensions(operandDimensions) else { return nil }
        let rank = output.count
        outputDimensions = output
        elementCount = output.reduce(1, *)

        // Full-rank strides per operand, 0 on broadcast (size-1) dimensions.
        var strides = [[Int]]()
        for shape in operandDimensions {
            let padded = [Int](repeating: 1, count: rank - shape.count) + shape
            var operandStrides = [Int](repeating: 0, count: rank)
            var running = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                operandStrides[axis] = padded[axis] == 1 ? 0 : running
                running *= padded[axis]
            }
            strides.append(operandStrides)
        }

        // Drop size-1 output dimensions, then merge neighbours that every operand walks alike.
        var dimensions = [Int]()
        var merged = [[Int]](repeating: [], count: operandDimensions.count)
        for axis in 0..<rank where output[axis] != 1 {
            if let last = dimensions.last,
                strides.indices.allSatisfy({ merged[$0][merged[$0].count - 1] == strides[$0][axis] * output[axis] })
            {
                dimensions[dimensions.count - 1] = last * output[axis]
                for operand in strides.indices { merged[operand][merged[operand].count - 1] = strides[operand][axis] }
            } else {
                dimensions.append(output[axis])
                for operand in strides.indices { merged[operand].append(strides[operand][axis]) }
            }
        }
        if let inner = dimensions.popLast() {
            innerCount = inner
            innerStrides = merged.map { $0.removingLast() }
            outerStrides = merged.map { Array($0.dropLast()) }
        } else {
            innerCount = 1
            innerStrides = [Int](repeating: 0, count: operandDimensions.count)
            outerStrides = [[Int]](repeating: [], count: operandDimensions.count)
        }
        outerDimensions = dimensions
        outerCount = dimensions.reduce(1, *)
    }

    /// Elements per parallel task; fixed so the split never depends on the thread count.
    public static let chunkElementCount = 1 << 16

    /// The number of tasks ``forEachRow(task:_:)`` expects, splitting long rows and grouping short
    /// ones so each task covers about ``chunkElementCount`` elements.
    public var taskCount: Int {
        if elementCount == 0 { return 0 }
        if innerCount >= Self.chunkElementCount {
            return outerCount * ((innerCount + Self.chunkElementCount - 1) / Self.chunkElementCount)
        }
        let rowsPerTask = Self.chunkElementCount / innerCount
        return (outerCount + rowsPerTask - 1) / rowsPerTask
    }

    /// Calls `body(outputOffset, operandOffsets, count)` for each row piece of `task`: `count`
    /// contiguous output elements starting at `outputOffset`, with the operands' element offsets
    /// (unused operands report 0). Offsets are in elements.
    @inline(__always)
    public func forEachRow(task: Int, _ body: (Int, (Int, Int, Int), Int) -> Void) {
        let rows: Range<Int>
        var innerStart = 0
        var innerEnd = innerCount
        if innerCount >= Self.chunkElementCount {
            let piecesPerRow = (innerCount + Self.chunkElementCount - 1) / Self.chunkElementCount
            let row = task / piecesPerRow
            innerStart = (task % piecesPerRow) * Self.chunkElementCount
            innerEnd = min(innerCount, innerStart + Self.chunkElementCount)
            rows = row..<(row + 1)
        } else {
            let rowsPerTask = Self.chunkElementCount / innerCount
            rows = (task * rowsPerTask)..<min(outerCount, (task + 1) * rowsPerTask)
        }
        let outerRank = outerDimensions.count
        let operandCount = outerStrides.count
        let stride0 = innerStrides[0]
        let stride1 = operandCount > 1 ? innerStrides[1] : 0
        let stride2 = operandCount > 2 ? innerStrides[2] : 0
        if outerRank == 1 {
            // One outer axis (a per-channel scale over [C, H·W], a bias over rows): the offsets
            // are the row times each operand's stride, without the odometer's nested array reads
            // (efficientnet_b0's squeeze-and-excitation scales, 1152 rows of 49 values: 0.015–0.017
            // → 0.012–0.013 ms each).
            let outer0 = outerStrides[0][0]
            let outer1 = operandCount > 1 ? outerStrides[1][0] : 0
            let outer2 = operandCount > 2 ? outerStrides[2][0] : 0
            for row in rows {
                body(
                    row * innerCount + innerStart,
                    (
                        row * outer0 + innerStart * stride0, row * outer1 + innerStart * stride1,
                        row * outer2 + innerStart * stride2
                    ),
                    innerEnd - innerStart)
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: max(outerRank, 1)) { index in
            // Decompose the first row into a multi-index, then step it like an odometer.
            var remainder = rows.lowerBound
            var offsets = (0, 0, 0)
            for axis in stride(from: outerRank - 1, through: 0, by: -1) {
                let dimension = outerDimensions[axis]
                index[axis] = remainder % dimension
                remainder /= dimension
                offsets.0 += index[axis] * outerStrides[0][axis]
                if operandCount > 1 { offsets.1 += index[axis] * outerStrides[1][axis] }
                if operandCount > 2 { offsets.2 += index[axis] * outerStrides[2][axis] }
            }
            for row in rows {
                body(
                    row * innerCount + innerStart,
                    (
                        offsets.0 + innerStart * stride0, offsets.1 + innerStart * stride1,
                        offsets.2 + innerStart * stride2
                    ),
                    innerEnd - innerStart)
                var axis = outerRank - 1
                while axis >= 0 {
                    index[axis] += 1
                    offsets.0 += outerStrides[0][axis]
                    if operandCount > 1 { offsets.1 += outerStrides[1][axis] }
                    if operandCount > 2 { offsets.2 += outerStrides[2][axis] }
                    if index[axis] < outerDimensions[axis] { break }
                    offsets.0 -= outerStrides[0][axis] * outerDimensions[axis]
                    if operandCount > 1 { offsets.1 -= outerStrides[1][axis] * outerDimensions[axis] }
                    if operandCount > 2 { offsets.2 -= outerStrides[2][axis] * outerDimensions[axis] }
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
    }
}

extension Array {
    fileprivate func removingLast() -> Element { self[count - 1] }
}
