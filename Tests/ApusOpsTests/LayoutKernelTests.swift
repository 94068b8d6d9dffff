import Testing

@testable import ApusOps

/// Fills a byte buffer with a pattern that differs at every byte, so misplaced bytes show.
private func patternedBytes(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
}

/// A tiny deterministic generator so the randomized cases are reproducible.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs `copy` with the fast kernel (1 and 2 threads) and the reference, and compares the bytes.
private func expectFastMatchesReference(
    _ copy: LayoutCopy, sourceElements: Int, destinationElements: Int,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let size = copy.elementByteSize
    let source = patternedBytes(sourceElements * size)
    var expected = [UInt8](repeating: 0xAA, count: destinationElements * size)
    var fast1 = expected
    var fast2 = expected
    source.withUnsafeBytes { from in
        guard let from = from.baseAddress else { return }
        expected.withUnsafeMutableBytes {
            if let to = $0.baseAddress { copy.runReference(source: from, destination: to) }
        }
        fast1.withUnsafeMutableBytes {
            if let to = $0.baseAddress {
                copy.run(source: from, destination: to, context: ComputeContext(threadCount: 1))
            }
        }
        fast2.withUnsafeMutableBytes {
            if let to = $0.baseAddress {
                copy.run(source: from, destination: to, context: ComputeContext(threadCount: 2))
            }
        }
    }
    #expect(fast1 == expected, "shape \(copy.shape)", sourceLocation: sourceLocation)
    #expect(fast2 == expected, "shape \(copy.shape), 2 threads", sourceLocation: sourceLocation)
}

@Suite struct LayoutKernelTests {
    @Test(arguments: [1, 2, 4, 8])
    func layoutCopyMatchesReferenceOnRandomBoxes(elementByteSize: Int) {
        var random = SplitMix(state: UInt64(elementByteSize))
        let sizes = [0, 1, 2, 3, 5, 7, 16]
        for _ in 0..<200 {
            let rank = Int.random(in: 1...4, using: &random)
            let shape = (0..<rank).map { _ in sizes.randomElement(using: &random) ?? 1 }
            // Source: a contiguous tensor with each dimension at least the box's; tables are
            // strided (positive, negative or zero) or arbitrary permutations of positions.
            let sourceShape = shape.map { Swift.max($0, 1) + Int.random(in: 0...2, using: &random) }
            let strides = LayoutCopy.rowMajorStrides(sourceShape)
            var base = 0
            let tables: [[Int]] = shape.indices.map { axis in
                let limit = sourceShape[axis]
                switch Int.random(in: 0..<4, using: &random) {
                case 0: return (0..<shape[axis]).map { $0 * strides[axis] }
                case 1:
                    base += (limit - 1) * strides[axis]
                    return (0..<shape[axis]).map { -($0 % limit) * strides[axis] }
                case 2: return Array(repeating: 0, count: shape[axis])
                default: return (0..<shape[axis]).map { _ in Int.random(in: 0..<limit, using: &random) * strides[axis] }
                }
            }
            let copy = LayoutCopy(
                shape: shape, sourceOffsets: tables, sourceBase: base, elementByteSize: elementByteSize)
            expectFastMatchesReference(
                copy, sourceElements: sourceShape.reduce(1, *), destinationElements: shape.reduce(1, *))
        }
    }

    @Test func layoutCopyIntoStridedDestination() {
        // A 2×3 box written into rows 1–2, columns 2–4 of a 4×6 destination (what constant Pad does).
        let copy = LayoutCopy(
            shape: [2, 3], sourceStrides: [3, 1], destinationStrides: [6, 1], destinationBase: 8, elementByteSize: 4)
        expectFastMatchesReference(copy, sourceElements: 6, destinationElements: 24)
        var destination = [Float](repeating: -1, count: 24)
        let source: [Float] = [0, 1, 2, 3, 4, 5]
        source.withUnsafeBytes { from in
            destination.withUnsafeMutableBytes { to in
                copy.run(source: from.baseAddress!, destination: to.baseAddress!, context: ComputeContext())
            }
        }
        // Hand-derived: row 1 columns 2–4 hold 0,1,2; row 2 columns 2–4 hold 3,4,5.
        #expect(Array(destination[6..<12]) == [-1, -1, 0, 1, 2, -1])
        #expect(Array(destination[12..<18]) == [-1, -1, 3, 4, 5, -1])
        #expect(destination[0..<6].allSatisfy { $0 == -1 } && destination[18..<24].allSatisfy { $0 == -1 })
    }

    /// Tile is 32: lengths 0, 1, tile − 1, tile, tile + 1 and a prime, per STYLE point 4.
    @Test(arguments: [1, 2, 4, 8])
    func tiledTransposeMatchesReference(elementByteSize: Int) {
        let lengths = [0, 1, 31, 32, 33, 37]
        for rows in lengths {
            for columns in lengths {
                for batch in [1, 2] {
                    let count = batch * rows * columns
                    let source = patternedBytes(count * elementByteSize)
                    var expected = [UInt8](repeating: 0, count: count * elementByteSize)
                    var actual = expected
                    source.withUnsafeBytes { from in
                        guard let from = from.baseAddress else { return }
                        expected.withUnsafeMutableBytes {
                            guard let to = $0.baseAddress else { return }
                            Layout.transposeReference(
                                source: from, destination: to, shape: [batch, rows, columns], permutation: [0, 2, 1],
                                elementByteSize: elementByteSize)
                        }
                        actual.withUnsafeMutableBytes {
                            guard let to = $0.baseAddress else { return }
                            Layout.transposeTiled(
                                source: from, destination: to, batchCount: batch, rowCount: rows, columnCount: columns,
                                elementByteSize: elementByteSize, context: ComputeContext(threadCount: 2))
                        }
                    }
                    #expect(actual == expected, "\(batch)×\(rows)×\(columns), \(elementByteSize) bytes")
                }
            }
        }
    }

    @Test func transposeReferenceMatchesHandDerived2D() {
        // [[0, 1, 2], [3, 4, 5]] transposed is [[0, 3], [1, 4], [2, 5]].
        let source: [Float] = [0, 1, 2, 3, 4, 5]
        var destination = [Float](repeating: 0, count: 6)
        source.withUnsafeBytes { from in
            destination.withUnsafeMutableBytes { to in
                Layout.transposeReference(
                    source: from.baseAddress!, destination: to.baseAddress!, shape: [2, 3], permutation: [1, 0],
                    elementByteSize: 4)
            }
        }
        #expect(destination == [0, 3, 1, 4, 2, 5])
    }

    private static func permutations(_ values: [Int]) -> [[Int]] {
        guard values.count > 1 else { return [values] }
        return values.indices.flatMap { index in
            var rest = values
            let head = rest.remove(at: index)
            return permutations(rest).map { [head] + $0 }
        }
    }

    @Test(arguments: [[2, 3, 4, 5], [1, 3, 1, 5], [2, 1, 6, 1], [3, 0, 2, 2]])
    func transposeKernelAllPermutationsMatchReference(shape: [Int]) {
        for elementByteSize in [1, 2, 4, 8] {
            for permutation in Self.permutations([0, 1, 2, 3]) {
                let count = shape.reduce(1, *)
                let source = patternedBytes(count * elementByteSize)
                var expected = [UInt8](repeating: 0, count: count * elementByteSize)
                var actual = expected
                let kernel = TransposeKernel(shape: shape, permutation: permutation, elementByteSize: elementByteSize)
                source.withUnsafeBytes { from in
                    guard let from = from.baseAddress else { return }
                    expected.withUnsafeMutableBytes {
                        guard let to = $0.baseAddress else { return }
                        Layout.transposeReference(
                            source: from, destination: to, shape: shape, permutation: permutation,
                            elementByteSize: elementByteSize)
                    }
                    actual.withUnsafeMutableBytes {
                        guard let to = $0.baseAddress else { return }
                        kernel.run(source: from, destination: to, context: ComputeContext(threadCount: 2))
                    }
                }
                #expect(actual == expected, "shape \(shape), perm \(permutation), \(elementByteSize) bytes")
            }
        }
    }

    @Test func transposeKernelChoosesTiledForMatrixLikePermutations() {
        // NCHW → NHWC merges H and W: a batched [C, HW] → [HW, C] transpose.
        #expect(TransposeKernel(shape: [2, 16, 7, 7], permutation: [0, 2, 3, 1], elementByteSize: 4).isTiled)
        #expect(TransposeKernel(shape: [2, 7, 7, 16], permutation: [0, 3, 1, 2], elementByteSize: 4).isTiled)
        #expect(TransposeKernel(shape: [5, 9], permutation: [1, 0], elementByteSize: 2).isTiled)
        #expect(!TransposeKernel(shape: [2, 3, 4], permutation: [2, 1, 0], elementByteSize: 4).isTiled)
        #expect(!TransposeKernel(shape: [1, 3, 1], permutation: [2, 1, 0], elementByteSize: 4).isTiled)
    }

    @Test func gatherAndFillAndBlocks() {
        // Source rows of [3, 2]: [[0, 1], [2, 3], [4, 5]]; indices [2, -3, 1] give rows 2, 0, 1.
        let source: [Int32] = [0, 1, 2, 3, 4, 5]
        let indices: [Int64] = [2, -3, 1]
        var destination = [Int32](repeating: 0, count: 6)
        source.withUnsafeBytes { from in
            destination.withUnsafeMutableBytes { to in
                indices.withUnsafeBufferPointer { indices in
                    Layout.gather(
                        source: from.baseAddress!, destination: to.baseAddress!, outerCount: 1, axisCount: 3,
                        innerByteCount: 8, indices: indices, context: ComputeContext())
                }
            }
        }
        #expect(destination == [4, 5, 0, 1, 2, 3])

        for size in [1, 2, 4, 8] {
            for count in [0, 1, 15, 16, 17, 31] {
                var bytes = [UInt8](repeating: 0, count: count * size + 1)
                let value: [UInt8] = (0..<size).map { UInt8($0 + 1) }
                value.withUnsafeBytes { value in
                    bytes.withUnsafeMutableBytes { to in
                        Layout.fill(to.baseAddress!, count: count, elementByteSize: size, value: value.baseAddress!)
                    }
                }
                #expect(bytes == (0..<count).flatMap { _ in value } + [0], "fill \(count) × \(size)")
            }
        }

        // Two blocks of 2 bytes with source stride 3 and destination stride 4.
        let blocks: [UInt8] = [1, 2, 9, 3, 4, 9]
        var out = [UInt8](repeating: 0, count: 8)
        blocks.withUnsafeBytes { from in
            out.withUnsafeMutableBytes { to in
                Layout.copyBlocks(
                    source: from.baseAddress!, sourceStride: 3, destination: to.baseAddress!, destinationStride: 4,
                    blockByteCount: 2, blockCount: 2, context: ComputeContext())
            }
        }
        #expect(out == [1, 2, 0, 0, 3, 4, 0, 0])
    }

    @Test func largeCopySplitsAcrossThreadsWithIdenticalBytes() {
        // Big enough (> 256 KiB) that the copy is split into several tasks.
        let copy = LayoutCopy(shape: [300, 257], sourceStrides: [1, 300], elementByteSize: 4)
        expectFastMatchesReference(copy, sourceElements: 300 * 257, destinationElements: 300 * 257)
    }
}
