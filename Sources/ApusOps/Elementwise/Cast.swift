import ApusTensor

/// The float32 value of an IEEE 754 binary16 bit pattern (exact).
@inline(__always)
public func float32(fromFloat16Bits half: UInt16) -> Float {
    let sign = UInt32(half & 0x8000) << 16
    let exponent = UInt32(half >> 10) & 0x1f
    let mantissa = UInt32(half & 0x3ff)
    if exponent == 0 {
        // Zero or subnormal: mantissa · 2⁻²⁴, exact in float32.
        let magnitude = Float(mantissa) * 0x1p-24
        return Float(bitPattern: sign | magnitude.bitPattern)
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// The binary16 bit pattern nearest to `value` (round half to even; overflow gives ±infinity,
/// NaN stays a quiet NaN).
@inline(__always)
public func float16Bits(fromFloat32 value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xff)
    let mantissa = bits & 0x7f_ffff
    if exponent == 255 { return sign | 0x7c00 | (mantissa != 0 ? 0x200 | UInt16(mantissa >> 13) : 0) }
    let halfExponent = exponent - 112
    if halfExponent >= 31 { return sign | 0x7c00 }
    if halfExponent <= 0 {
        // Subnormal half (or zero): the significand shifted right, rounded half to even.
        if halfExponent < -10 { return sign }
        let significand = mantissa | 0x80_0000
        let shift = UInt32(14 - halfExponent)
        var result = significand >> shift
        let remainder = significand & ((1 << shift) - 1)
        let halfway = UInt32(1) << (shift - 1)
        if remainder > halfway || (remainder == halfway && result & 1 == 1) { result += 1 }
        return sign | UInt16(result)
    }
    var result = UInt32(halfExponent) << 10 | mantissa >> 13
    let remainder = mantissa & 0x1fff
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    if remainder > 0x1000 || (remainder == 0x1000 && result & 1 == 1) { result += 1 }
    return sign | UInt16(result)
}

/// Converts `count` binary16 values (as bit patterns) to float32.
public func convertFloat16ToFloat32(
    _ source: UnsafePointer<UInt16>, _ destination: UnsafeMutablePointer<Float>, count: Int
) {
    for index in 0..<count { destination[index] = float32(fromFloat16Bits: source[index]) }
}

/// Converts `count` float32 values to binary16 bit patterns, rounding half to even.
public func convertFloat32ToFloat16(
    _ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<UInt16>, count: Int
) {
    for index in 0..<count { destination[index] = float16Bits(fromFloat32: source[index]) }
}

/// A float converted to an integer type the way C converts in-range values (truncation toward
/// zero). Where C is undefined Apus chooses: NaN gives 0, values beyond the type's range
/// saturate to its minimum or maximum.
@inline(__always)
public func saturatingInteger<T: FixedWidthInteger>(_ value: Float, as type: T.Type = T.self) -> T {
    if value.isNaN { return 0 }
    if let exact = T(exactly: value.rounded(.towardZero)) { return exact }
    return value < 0 ? T.min : T.max
}

/// Converts `count` elements from one dtype to another (ONNX `Cast`).
///
/// Float → integer truncates toward zero (NaN → 0, out of range saturates, see
/// ``saturatingInteger(_:as:)``); integer → integer keeps the low bits (two's complement wrap, as C
/// and numpy do); anything → bool is `value != 0` (NaN → true); bool → number is 0 or 1;
/// int64 → float rounds to nearest.
public func castElements(
    _ source: UnsafeRawPointer, from sourceType: DType, to destination: UnsafeMutableRawPointer,
    _ destinationType: DType, count: Int
) {
    if sourceType == destinationType {
        destination.copyMemory(from: source, byteCount: count * sourceType.byteSize)
        return
    }
    switch sourceType {
    case .float32:
        castFromFloat(source.assumingMemoryBound(to: Float.self), destination, destinationType, count)
    case .float16:
        // Widen through a small stack buffer, then convert as float32 (exact: every half is a float).
        let halves = source.assumingMemoryBound(to: UInt16.self)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 1024) { buffer in
            guard let floats = buffer.baseAddress else { return }
            var start = 0
            while start < count {
                let length = min(1024, count - start)
                convertFloat16ToFloat32(halves + start, floats, count: length)
                castFromFloat(floats, destination + start * destinationType.byteSize, destinationType, length)
                start += length
            }
        }
    case .int64: castFromInteger(source.assumingMemoryBound(to: Int64.self), destination, destinationType, count)
    case .int32: castFromInteger(source.assumingMemoryBound(to: Int32.self), destination, destinationType, count)
    case .int8: castFromInteger(source.assumingMemoryBound(to: Int8.self), destination, destinationType, count)
    case .uint8, .bool:
        // Bool is stored as one byte holding 0 or 1.
        castFromInteger(source.assumingMemoryBound(to: UInt8.self), destination, destinationType, count)
    }
}

@inline(__always)
func mapElements<Source, Destination>(
    _ source: UnsafePointer<Source>, _ destination: UnsafeMutableRawPointer, _ count: Int,
    _ transform: (Source) -> Destination
) {
    let output = destination.assumingMemoryBound(to: Destination.self)
    for index in 0..<count { output[index] = transform(source[index]) }
}

func castFromFloat(_ source: UnsafePointer<Float>, _ destination: UnsafeMutableRawPointer, _ type: DType, _ count: Int)
{
    switch type {
    case .float32: destination.copyMemory(from: source, byteCount: count * 4)
    case .float16: convertFloat32ToFloat16(source, destination.assumingMemoryBound(to: UInt16.self), count: count)
    case .int64: mapElements(source, destination, count) { saturatingInteger($0, as: Int64.self) }
    case .int32: mapElements(source, destination, count) { saturatingInteger($0, as: Int32.self) }
    case .int8: mapElements(source, destination, count) { saturatingInteger($0, as: Int8.self) }
    case .uint8: mapElements(source, destination, count) { saturatingInteger($0, as: UInt8.self) }
    case .bool: mapElements(source, destination, count) { $0 != 0 }
    }
}

func castFromInteger<Source: FixedWidthInteger>(
    _ source: UnsafePointer<Source>, _ destination: UnsafeMutableRawPointer, _ type: DType, _ count: Int
) {
    switch type {
    case .float32: mapElements(source, destination, count) { Float($0) }
    case .float16: mapElements(source, destination, count) { float16Bits(fromFloat32: Float($0)) }
    case .int64: mapElements(source, destination, count) { Int64(truncatingIfNeeded: $0) }
    case .int32: mapElements(source, destination, count) { Int32(truncatingIfNeeded: $0) }
    case .int8: mapElements(source, destination, count) { Int8(truncatingIfNeeded: $0) }
    case .uint8: mapElements(source, destination, count) { UInt8(truncatingIfNeeded: $0) }
    case .bool: mapElements(source, destination, count) { $0 != 0 }
    }
}
