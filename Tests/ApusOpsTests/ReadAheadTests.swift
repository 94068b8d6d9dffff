import Testing

@testable import ApusOps

/// The packed GEMM kernel's read-ahead (``ReadAhead``): kernel calls inside
/// ``ReadAhead/during(_:stream:_:)`` claim the whole region between them, on the caller's thread
/// and on the pool's workers, and compute the same bits as without it.
@Suite(.enabled(if: PackedGemm.hasAVX512, "the read-ahead is in the AVX-512 kernel"))
struct ReadAheadTests {
    /// 64 × 49 × 320 in row tiles of 16 (one task each), with a region of `regionBytes`.
    static func product(threads: Int, regionBytes: Int?) -> (c: [Float], claimed: Int) {
        let (m, n, k) = (64, 49, 320)
        var random = TestRandom(seed: 7)
        let a = random.array(m * k)
        let b = random.array(k * n)
        let packed = a.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: m, columns: k, rowStride: k) }
        var c = [Float](repeating: .nan, count: m * n)
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: max(64, regionBytes ?? 64), alignment: 64)
        let stream = UnsafeMutableRawPointer.allocate(byteCount: ReadAhead.streamByteCount, alignment: 64)
        defer {
            region.deallocate()
            stream.deallocate()
        }
        struct Tiles: ParallelTasks {
            let packed: PackedMatrix
            let b: UnsafePointer<Float>
            let c: UnsafeMutablePointer<Float>

            func run(_ task: Int) {
                PackedGemm.multiply(
                    packed, firstRow: task * 16, rowCount: 16, n: 49, b: b, ldb: 49, c: c + task * 16 * 49, ldc: 49)
            }
        }
        b.withUnsafeBufferPointer { b in
            c.withUnsafeMutableBufferPointer { c in
                let tiles = Tiles(packed: packed, b: b.baseAddress!, c: c.baseAddress!)
                let context = ComputeContext(threadCount: threads)
                if let regionBytes {
                    ReadAhead.during(
                        UnsafeRawBufferPointer(start: region.baseAddress, count: regionBytes), stream: stream
                    ) { context.parallelFor(m / 16, tiles) }
                } else {
                    context.parallelFor(m / 16, tiles)
                }
            }
        }
        #expect(ReadAhead.current == nil, "the stream is the thread's only inside `during`")
        return (c, regionBytes == nil ? 0 : ReadAhead.claimedBytes(stream))
    }

    @Test func claimsTheRegionAndKeepsTheBits() {
        let plain = Self.product(threads: 1, regionBytes: nil).c
        // Eight panels × 320 steps of k × 128 bytes: 320 KB can be fetched; ask for less and more.
        #expect(ReadAhead.capacity(m: 64, n: 49, k: 320) == 8 * 320 * 128)
        for threads in [1, 2] {
            for bytes in [100_000, 1 << 20] {
                let run = Self.product(threads: threads, regionBytes: bytes)
                #expect(run.c == plain, "\(threads) threads, \(bytes) bytes")
                #expect(run.claimed == min(bytes, ReadAhead.capacity(m: 64, n: 49, k: 320)))
            }
        }
    }
}
