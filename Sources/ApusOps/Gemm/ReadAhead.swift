import CApusKernels

/// Read-ahead of weights a later step will stream from memory, by the packed GEMM kernel while it
/// computes an earlier step (Sources/CApusKernels/prefetch_stream.h).
///
/// A matrix-vector product over megabytes of weights (a classifier, batch 1) is bound by memory:
/// mobilenet_v2's 1000 × 1280 layer reads 5 MB per run from DRAM, the last time it was touched
/// being one inference ago. The compute-bound convolution a few steps before it has time and
/// bandwidth to spare, so its kernel calls prefetch those weights into L2 (and, as L2 overflows,
/// into L3) between their multiply-adds: each strip of the kernel (an 8-row panel by up to 48
/// columns over one block of `k`) claims two 64-byte lines per step of `k` from a shared cursor,
/// so the threads of a run split the region between them. Prefetches never fault and never
/// change a result.
public enum ReadAhead {
    /// Bytes of one stream's state (a multiple of 64).
    public static let streamByteCount = apus_prefetch_stream_size()

    /// Whether planners give steps a read-ahead: yes, unless the environment sets
    /// `APUS_READ_AHEAD=0` (to measure the difference).
    public static let isEnabledByDefault = !EnvironmentSwitch.isOff("APUS_READ_AHEAD")

    /// Bytes the packed kernel can fetch while computing `m` × `n` × `k` (two lines per step of
    /// `k` of every 8-row panel and 48-column strip).
    static func capacity(m: Int, n: Int, k: Int) -> Int {
        let panels = (m + 7) / 8
        let strips = max(1, n / 48)
        return panels * strips * k * 128
    }

    /// Runs `body` with the calling thread's kernel calls (and the thread pool's workers, for the
    /// jobs it hands out meanwhile) reading ahead over `region`, tracked in `stream` (memory of
    /// ``streamByteCount`` bytes that nothing else uses meanwhile).
    @inlinable
    public static func during<Result, Failure: Error>(
        _ region: UnsafeRawBufferPointer, stream: UnsafeMutableRawPointer, _ body: () throws(Failure) -> Result
    ) throws(Failure) -> Result {
        start(region, stream: stream)
        defer { stop() }
        return try body()
    }

    @usableFromInline
    static func start(_ region: UnsafeRawBufferPointer, stream: UnsafeMutableRawPointer) {
        apus_prefetch_stream_start(stream, region.baseAddress, region.count)
        apus_prefetch_stream_use(stream)
    }

    @usableFromInline
    static func stop() { apus_prefetch_stream_use(nil) }

    /// Bytes of `stream`'s region handed out to kernel calls so far.
    static func claimedBytes(_ stream: UnsafeRawPointer) -> Int { apus_prefetch_stream_claimed(stream) }

    /// The calling thread's stream, for the thread pool to hand to its workers.
    static var current: UnsafeMutableRawPointer? { apus_prefetch_stream_current() }

    /// Makes `stream` the calling thread's (a worker joining a job).
    static func use(_ stream: UnsafeMutableRawPointer?) { apus_prefetch_stream_use(stream) }
}
