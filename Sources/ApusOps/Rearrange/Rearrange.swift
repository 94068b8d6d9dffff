/// Element rearrangements that move bytes without arithmetic: depth ↔ space, triangular masks.
/// Elements are `elementSize` bytes, so one kernel serves every dtype.
public enum Rearrange {
    /// How `DepthToSpace` orders the channel blocks.
    public enum DepthOrder: Sendable {
        /// Depth-column-row: block offset outermost in the channel index.
        case depthColumnRow
        /// Column-row-depth: output channel outermost.
        case columnRowDepth
    }

    /// `DepthToSpace` of NCHW `[batch, channels, height, width]` by `block` into
    /// `[batch, channels / block², height · block, width · block]`.
    public static func depthToSpace(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, batch: Int, channels: Int, height: Int,
        width: Int, block: Int, order: DepthOrder, elementSize: Int
    ) {
        let outputChannels = channels / (block * block)
        let outputHeight = height * block
        let outputWidth = width * block
        var destination = output
        for n in 0..<batch {
            for c in 0..<outputChannels {
                for y in 0..<outputHeight {
                    let (h, i) = y.quotientAndRemainder(dividingBy: block)
                    for x in 0..<outputWidth {
                        let (w, j) = x.quotientAndRemainder(dividingBy: block)
                        let sourceChannel =
                            order == .depthColumnRow
                            ? (i * block + j) * outputChannels + c : (c * block + i) * block + j
                        let index = ((n * channels + sourceChannel) * height + h) * width + w
                        destination.copyMemory(from: input + index * elementSize, byteCount: elementSize)
                        destination += elementSize
                    }
                }
            }
        }
    }

    /// `SpaceToDepth`: NCHW `[batch, channels, height, width]` into
    /// `[batch, channels · block², height / block, width / block]`, block offset outermost.
    public static func spaceToDepth(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, batch: Int, channels: Int, height: Int,
        width: Int, block: Int, elementSize: Int
    ) {
        let outputHeight = height / block
        let outputWidth = width / block
        var destination = output
        for n in 0..<batch {
            for outputChannel in 0..<(channels * block * block) {
                let (offset, c) = outputChannel.quotientAndRemainder(dividingBy: channels)
                let (i, j) = offset.quotientAndRemainder(dividingBy: block)
                for h in 0..<outputHeight {
                    for w in 0..<outputWidth {
                        let index = ((n * channels + c) * height + h * block + i) * width + w * block + j
                        destination.copyMemory(from: input + index * elementSize, byteCount: elementSize)
                        destination += elementSize
                    }
                }
            }
        }
    }

    /// `Trilu`: copies `[matrices, rows, columns]`, zeroing elements outside the triangle: above
    /// diagonal `k` when `upper` is false (`column − row > k`), below it when true (`column − row < k`).
    public static func triangle(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, matrices: Int, rows: Int, columns: Int,
        k: Int, upper: Bool, elementSize: Int
    ) {
        for m in 0..<matrices {
            for row in 0..<rows {
                let offset = ((m * rows + row) * columns) * elementSize
                for column in 0..<columns {
                    let keep = upper ? column - row >= k : column - row <= k
                    let position = offset + column * elementSize
                    if keep {
                        (output + position).copyMemory(from: input + position, byteCount: elementSize)
                    } else {
                        (output + position).initializeMemory(as: UInt8.self, repeating: 0, count: elementSize)
                    }
                }
            }
        }
    }
}
