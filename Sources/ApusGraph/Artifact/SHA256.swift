import ApusOps
import CApusSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// SHA-256 (FIPS 180-4), used for the integrity digest of an `.apus` data section.
///
/// Implemented here so that ApusGraph needs no crypto library; it processes whole 64-byte blocks
/// straight from the caller's memory with a stack-allocated message schedule, so hashing a 1 GB
/// data section allocates nothing per block. On CPUs with the SHA extensions the blocks go
/// through them (`apus_sha256_blocks`, about 5× faster); `APUS_SHA_EXTENSIONS=0` keeps the
/// portable code.
///
/// ```swift
/// var hasher = SHA256()
/// hasher.update(bytes: buffer)
/// let hex = SHA256.hexString(hasher.finalize())
/// ```
public struct SHA256: Sendable {
    private var h0: UInt32 = 0x6a09_e667
    private var h1: UInt32 = 0xbb67_ae85
    private var h2: UInt32 = 0x3c6e_f372
    private var h3: UInt32 = 0xa54f_f53a
    private var h4: UInt32 = 0x510e_527f
    private var h5: UInt32 = 0x9b05_688c
    private var h6: UInt32 = 0x1f83_d9ab
    private var h7: UInt32 = 0x5be0_cd19
    /// Bytes of an incomplete block carried over between `update` calls (at most 63 used).
    private var pending: [UInt8] = []
    /// Total message length in bytes.
    private var totalLength: UInt64 = 0
    /// Whether blocks go through the CPU's SHA extensions.
    private let hardware: Bool

    /// Creates a hasher in the initial state.
    public init() {
        self.init(hardware: Self.usesHardware)
    }

    /// A hasher that uses the SHA extensions or not (tests compare the two; `hardware` needs
    /// ``hardwareAvailable``).
    init(hardware: Bool) {
        precondition(!hardware || Self.hardwareAvailable, "the CPU has no SHA extensions")
        self.hardware = hardware
        pending.reserveCapacity(64)
    }

    /// The digest of `bytes` in one call.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bytes: bytes)
        return hasher.finalize()
    }

    /// The digest of `bytes` in one call.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }

    /// Lower-case hexadecimal spelling of a digest.
    public static func hexString(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var result: [UInt8] = []
        result.reserveCapacity(digest.count * 2)
        for byte in digest {
            result.append(digits[Int(byte >> 4)])
            result.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Feeds `count` zero bytes (the padding of a data section) without a buffer of that size.
    public mutating func updateWithZeros(count: Int) {
        guard count > 0 else { return }
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 64) { zeros in
            zeros.initializeMemory(as: UInt8.self, repeating: 0)
            var remaining = count
            while remaining > 0 {
                let chunk = Swift.min(remaining, zeros.count)
                update(bytes: UnsafeRawBufferPointer(rebasing: zeros[0..<chunk]))
                remaining -= chunk
            }
        }
    }

    /// Feeds more message bytes.
    public mutating func update(bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        totalLength &+= UInt64(bytes.count)
        var start = 0
        if !pending.isEmpty {
            let take = Swift.min(64 - pending.count, bytes.count)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<take]))
            start = take
            if pending.count == 64 {
                // A local copy: compress mutates self, so it must not run inside an access to `pending`.
                let block = pending
                block.withUnsafeBytes { compress(blocks: $0.baseAddress.unsafelyUnwrapped, count: 1) }
                pending.removeAll(keepingCapacity: true)
            }
        }
        let remaining = bytes.count - start
        let wholeBlocks = remaining / 64
        if wholeBlocks > 0 {
            compress(blocks: base + start, count: wholeBlocks)
            start += wholeBlocks * 64
        }
        if start < bytes.count {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
        }
    }

    /// Finishes the message and returns the 32-byte digest. The hasher must not be used after.
    public mutating func finalize() -> [UInt8] {
        let bitLength = totalLength &* 8
        var tail = pending
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) {
            tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        tail.withUnsafeBytes { compress(blocks: $0.baseAddress.unsafelyUnwrapped, count: tail.count / 64) }
        pending.removeAll()
        var digest: [UInt8] = []
        digest.reserveCapacity(32)
        for word in [h0, h1, h2, h3, h4, h5, h6, h7] {
            digest.append(UInt8(truncatingIfNeeded: word >> 24))
            digest.append(UInt8(truncatingIfNeeded: word >> 16))
            digest.append(UInt8(truncatingIfNeeded: word >> 8))
            digest.append(UInt8(truncatingIfNeeded: word))
        }
        return digest
    }

    @inline(__always)
    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x &>> n) | (x &<< (32 &- n)) }

    /// Whether the CPU has the SHA extensions.
    static let hardwareAvailable = apus_sha256_hardware_available() != 0

    /// Whether hashers use the SHA extensions: when the CPU has them, unless the environment sets
    /// `APUS_SHA_EXTENSIONS=0`.
    static let usesHardware: Bool = {
        if EnvironmentSwitch.isOff("APUS_SHA_EXTENSIONS") { return false }
        return hardwareAvailable
    }()

    /// Runs the compression function over `count` consecutive 64-byte blocks.
    private mutating func compress(blocks: UnsafeRawPointer, count: Int) {
        if hardware {
            var state = (h0, h1, h2, h3, h4, h5, h6, h7)
            withUnsafeMutableBytes(of: &state) { words in
                apus_sha256_blocks(
                    words.baseAddress!.assumingMemoryBound(to: UInt32.self),
                    blocks.assumingMemoryBound(to: UInt8.self), UInt(count))
            }
            (h0, h1, h2, h3, h4, h5, h6, h7) = state
            return
        }
        let k = apus_sha256_round_constants()!
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            var a0 = h0, b0 = h1, c0 = h2, d0 = h3, e0 = h4, f0 = h5, g0 = h6, hh0 = h7
            for block in 0..<count {
                let p = blocks + block * 64
                for t in 0..<16 {
                    w[t] = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: t * 4, as: UInt32.self))
                }
                for t in 16..<64 {
                    let x = w[t - 15], y = w[t - 2]
                    let s0 = Self.rotr(x, 7) ^ Self.rotr(x, 18) ^ (x &>> 3)
                    let s1 = Self.rotr(y, 17) ^ Self.rotr(y, 19) ^ (y &>> 10)
                    w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
                }
                var a = a0, b = b0, c = c0, d = d0, e = e0, f = f0, g = g0, h = hh0
                for t in 0..<64 {
                    let s1 = Self.rotr(e, 6) ^ Self.rotr(e, 11) ^ Self.rotr(e, 25)
                    let choose = (e & f) ^ (~e & g)
                    let t1 = h &+ s1 &+ choose &+ k[t] &+ w[t]
                    let s0 = Self.rotr(a, 2) ^ Self.rotr(a, 13) ^ Self.rotr(a, 22)
                    let majority = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = s0 &+ majority
                    h = g
                    g = f
                    f = e
                    e = d &+ t1
                    d = c
                    c = b
                    b = a
                    a = t1 &+ t2
                }
                a0 &+= a
                b0 &+= b
                c0 &+= c
                d0 &+= d
                e0 &+= e
                f0 &+= f
                g0 &+= g
                hh0 &+= h
            }
            h0 = a0
            h1 = b0
            h2 = c0
            h3 = d0
            h4 = e0
            h5 = f0
            h6 = g0
            h7 = hh0
        }
    }
}
