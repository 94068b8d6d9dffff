#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The memory behind one or more ``Tensor`` values: either a 64-byte-aligned heap block that the
/// storage owns, or a region of memory it does not own (for example part of a memory-mapped file),
/// kept alive by an owner object.
public final class TensorStorage: @unchecked Sendable {
    /// Alignment of every block this storage allocates, in bytes.
    public static let alignment = 64

    /// The first byte.
    public let baseAddress: UnsafeMutableRawPointer
    /// The number of usable bytes.
    public let byteCount: Int
    /// Whether this storage frees `baseAddress` when it is deinitialized.
    public let ownsMemory: Bool
    private let owner: AnyObject?

    /// Blocks from this size on start on a 2 MiB boundary and ask for transparent huge pages.
    public static let hugePageBytes = 4 << 20

    /// Allocates `byteCount` zeroed bytes, 64-byte aligned (from ``hugePageBytes`` on, 2 MiB
    /// aligned on huge pages where the system gives them).
    ///
    /// - Throws: ``TensorError/allocationFailed(bytes:)`` if the system refuses.
    public init(byteCount: Int) throws(TensorError) {
        precondition(byteCount >= 0)
        // posix_memalign with size 0 may return NULL; allocate at least one cache line.
        let size = Swift.max(byteCount, Self.alignment)
        var pointer: UnsafeMutableRawPointer?
        // Blocks of several megabytes (a plan's arena) start on a 2 MiB boundary and ask for
        // transparent huge pages, so zeroing them takes a few faults instead of one per 4 KiB page.
        let huge = 1 << 21
        let large = size >= Self.hugePageBytes
        guard posix_memalign(&pointer, large ? huge : Self.alignment, size) == 0, let pointer else {
            throw .allocationFailed(bytes: byteCount)
        }
        #if os(Linux)
            if large && getenv("APUS_NO_HUGEPAGE") == nil { _ = madvise(pointer, size / huge * huge, 14) }  // MADV_HUGEPAGE
        #endif
        memset(pointer, 0, size)
        self.baseAddress = pointer
        self.byteCount = byteCount
        self.ownsMemory = true
        self.owner = nil
    }

    /// Wraps memory this storage does not own. `owner` is retained for as long as the storage
    /// lives (for example the object that unmaps a file region in its `deinit`).
    public init(wrapping baseAddress: UnsafeMutableRawPointer, byteCount: Int, owner: AnyObject?) {
        self.baseAddress = baseAddress
        self.byteCount = byteCount
        self.ownsMemory = false
        self.owner = owner
    }

    deinit {
        if ownsMemory { free(baseAddress) }
    }

    /// Tells the owner of wrapped memory that the bytes `range` of this storage will not be read
    /// for a while, so it may drop them from memory (a read-only file mapping does; reading them
    /// later brings them back from the file). Owned heap memory is left alone.
    public func releaseResidentPages(_ range: Range<Int>) {
        guard !ownsMemory, let owner = owner as? ResidentPageReleasing else { return }
        let lower = Swift.max(0, range.lowerBound)
        let upper = Swift.min(byteCount, range.upperBound)
        if lower >= upper { return }
        owner.releaseResidentPages(UnsafeRawPointer(baseAddress + lower), byteCount: upper - lower)
    }
}

/// An owner of wrapped tensor memory that can drop pages from memory and bring them back on the
/// next read, such as a read-only mapping of a file.
public protocol ResidentPageReleasing: AnyObject {
    /// Drops the whole pages inside `byteCount` bytes from `start` from memory; the bytes keep
    /// their values.
    func releaseResidentPages(_ start: UnsafeRawPointer, byteCount: Int)
}
