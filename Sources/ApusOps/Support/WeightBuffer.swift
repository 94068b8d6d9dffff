#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Memory for weights a plan packs once and reads at every inference.
enum WeightBuffer {
    /// Allocates `count` floats (at least one), 64-byte aligned; from 4 MB up aligned to 2 MB and,
    /// on Linux, advised to transparent huge pages (a kernel streaming through megabytes of
    /// weights then misses the TLB far less) unless `APUS_NO_HUGEPAGE` is set. Free with
    /// `deallocate()`.
    static func allocate(floats count: Int) -> UnsafeMutablePointer<Float> {
        let total = max(1, count)
        let bytes = total * MemoryLayout<Float>.stride
        let huge = 1 << 21
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: bytes >= 2 * huge ? huge : 64)
        #if os(Linux)
            if bytes >= 2 * huge && EnvironmentSwitch.value("APUS_NO_HUGEPAGE") == nil {
                _ = madvise(raw, bytes / huge * huge, 14)  // MADV_HUGEPAGE
            }
        #endif
        return raw.bindMemory(to: Float.self, capacity: total)
    }
}
