import Foundation

/// Resampling filter, named as torchvision's `InterpolationMode` (and mapped to the Pillow filter
/// of the same name).
public enum Interpolation: String, Codable, Sendable, Hashable, CaseIterable {
    case nearest
    case bilinear
    case bicubic
    case box
    case hamming
    case lanczos
}

/// A Pillow resampling filter: the kernel and its support at scale 1 (Resample.c).
private struct PillowFilter {
    let support: Double
    let kernel: (Double) -> Double

    static func of(_ interpolation: Interpolation) -> PillowFilter? {
        switch interpolation {
        case .nearest: return nil
        case .box: return PillowFilter(support: 0.5) { x in (x > -0.5 && x <= 0.5) ? 1.0 : 0.0 }
        case .bilinear:
            return PillowFilter(support: 1.0) { x in
                let x = x < 0 ? -x : x
                return x < 1.0 ? 1.0 - x : 0.0
            }
        case .hamming:
            return PillowFilter(support: 1.0) { x in
                var x = x < 0 ? -x : x
                if x == 0.0 { return 1.0 }
                if x >= 1.0 { return 0.0 }
                x = x * Double.pi
                // Pillow writes 0.54f + 0.46f * cos(x): float constants promoted to double.
                return sin(x) / x * (Double(Float(0.54)) + Double(Float(0.46)) * cos(x))
            }
        case .bicubic:
            return PillowFilter(support: 2.0) { x in
                let a = -0.5
                let x = x < 0 ? -x : x
                if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
                if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
                return 0.0
            }
        case .lanczos:
            return PillowFilter(support: 3.0) { x in
                func sinc(_ x: Double) -> Double {
                    if x == 0.0 { return 1.0 }
                    let y = x * Double.pi
                    return sin(y) / y
                }
                return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0
            }
        }
    }
}

/// Pillow's `PRECISION_BITS` (32 - 8 - 2): weights are fixed point with 22 fractional bits.
let precisionBits: Int32 = 22

/// Per-output-sample source window and fixed-point weights, computed exactly as Pillow's
/// `precompute_coeffs` + `normalize_coeffs_8bpc` (double arithmetic in the same order).
struct ResampleCoefficients {
    /// Maximum taps per output sample (row stride of ``weights``).
    let taps: Int
    /// First source index for each output sample.
    let start: [Int]
    /// Number of source samples for each output sample.
    let count: [Int]
    /// `outSize * taps` weights in Q22.
    let weights: [Int32]

    init(inSize: Int, in0: Float, in1: Float, outSize: Int, support filterSupport: Double, kernel: (Double) -> Double) {
        let scale = Double(in1 - in0) / Double(outSize)
        let filterScale = scale < 1.0 ? 1.0 : scale
        let support = filterSupport * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var start = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * taps)
        var k = [Double](repeating: 0, count: taps)
        let invFilterScale = 1.0 / filterScale
        for xx in 0..<outSize {
            let center = Double(in0) + (Double(xx) + 0.5) * scale
            var ww = 0.0
            var xmin = Int(center - support + 0.5)
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            for x in 0..<taps { k[x] = 0 }
            if xmax > 0 {
                for x in 0..<xmax {
                    let w = kernel((Double(x + xmin) - center + 0.5) * invFilterScale)
                    k[x] = w
                    ww += w
                }
                if ww != 0.0 {
                    for x in 0..<xmax { k[x] /= ww }
                }
            }
            for x in 0..<taps {
                let v = k[x] * Double(1 << precisionBits)
                weights[xx * taps + x] = k[x] < 0 ? Int32(-0.5 + v) : Int32(0.5 + v)
            }
            start[xx] = xmin
            count[xx] = Swift.max(0, xmax)
        }
        self.taps = taps
        self.start = start
        self.count = count
        self.weights = weights
    }
}

/// Pillow's `clip8`: drop the 22 fraction bits (arithmetic shift, i.e. floor) and clamp to 0…255.
@inline(__always) func clip8(_ value: Int32) -> UInt8 {
    let v = value >> precisionBits
    return v < 0 ? 0 : (v > 255 ? 255 : UInt8(truncatingIfNeeded: v))
}

enum Resampler {
    /// Resizes like Pillow's `Image.resize((width, height), filter)` with the default box and no
    /// `reducing_gap` (which is what torchvision's `F.resize` on a PIL image calls).
    static func resize(_ image: Image, width outW: Int, height outH: Int, interpolation: Interpolation)
        throws(ImageError)
        -> Image
    {
        guard outW >= 1, outH >= 1 else {
            throw .invalidTransform("resize to \(outW)x\(outH): height and width must be > 0")
        }
        guard image.width >= 1, image.height >= 1 else {
            throw .invalidTransform("cannot resize an empty \(image.width)x\(image.height) image")
        }
        let (area, o1) = outW.multipliedReportingOverflow(by: outH)
        guard !o1, area <= Int(Int32.max) / 3 else { throw .invalidTransform("resize to \(outW)x\(outH) is too large") }
        if outW == image.width && outH == image.height { return image }
        guard let filter = PillowFilter.of(interpolation) else { return nearest(image, width: outW, height: outH) }
        let inW = image.width, inH = image.height
        let needHorizontal = outW != inW
        let needVertical = outH != inH
        let vertical = ResampleCoefficients(
            inSize: inH, in0: 0, in1: Float(inH), outSize: outH, support: filter.support, kernel: filter.kernel)
        // Only the source rows the vertical pass reads go through the horizontal pass.
        let firstRow = needVertical ? vertical.start[0] : 0
        let lastRow = needVertical ? vertical.start[outH - 1] + vertical.count[outH - 1] : inH
        var current = image.pixels
        var currentRows = inH
        var rowOffset = 0
        if needHorizontal {
            let horizontal = ResampleCoefficients(
                inSize: inW, in0: 0, in1: Float(inW), outSize: outW, support: filter.support, kernel: filter.kernel)
            current = horizontalPass(image.pixels, width: inW, rows: firstRow..<lastRow, outWidth: outW, horizontal)
            currentRows = lastRow - firstRow
            rowOffset = firstRow
        }
        _ = currentRows
        if needVertical {
            current = verticalPass(current, rowLength: outW * 3, rowOffset: rowOffset, outHeight: outH, vertical)
        }
        return Image(uncheckedWidth: outW, height: outH, pixels: current)
    }

    static func horizontalPass(
        _ input: [UInt8], width: Int, rows: Range<Int>, outWidth: Int, _ c: ResampleCoefficients
    ) -> [UInt8] {
        let bias: Int32 = 1 << (precisionBits - 1)
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * 3)
        input.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                c.weights.withUnsafeBufferPointer { weights in
                    for (outRow, y) in rows.enumerated() {
                        let line = y * width * 3
                        let outLine = outRow * outWidth * 3
                        for xx in 0..<outWidth {
                            let xmin = c.start[xx], n = c.count[xx]
                            let k = xx * c.taps
                            var s0 = bias, s1 = bias, s2 = bias
                            var p = line + xmin * 3
                            for x in 0..<n {
                                let w = weights[k + x]
                                s0 = s0 &+ Int32(src[p]) &* w
                                s1 = s1 &+ Int32(src[p + 1]) &* w
                                s2 = s2 &+ Int32(src[p + 2]) &* w
                                p += 3
                            }
                            dst[outLine + xx * 3] = clip8(s0)
                            dst[outLine + xx * 3 + 1] = clip8(s1)
                            dst[outLine + xx * 3 + 2] = clip8(s2)
                        }
                    }
                }
            }
        }
        return out
    }

    /// Vertical pass, SIMD across each row: every output sample is the Q22 dot product of one
    /// column of source samples, so 16 adjacent samples share the weights. Int32 lanes with
    /// wrapping arithmetic give exactly the scalar (and Pillow's) result.
    static func verticalPass(
        _ input: [UInt8], rowLength: Int, rowOffset: Int, outHeight: Int, _ c: ResampleCoefficients
    ) -> [UInt8] {
        let bias: Int32 = 1 << (precisionBits - 1)
        var out = [UInt8](repeating: 0, count: outHeight * rowLength)
        input.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let srcBase = src.baseAddress, let dstBase = dst.baseAddress else { return }
                for yy in 0..<outHeight {
                    let ymin = c.start[yy] - rowOffset, n = c.count[yy]
                    let k = yy * c.taps
                    var i = 0
                    while i + 16 <= rowLength {
                        var acc = SIMD16<Int32>(repeating: bias)
                        for y in 0..<n {
                            let raw = UnsafeRawPointer(srcBase + (ymin + y) * rowLength + i)
                                .loadUnaligned(as: SIMD16<UInt8>.self)
                            acc &+= SIMD16<Int32>(truncatingIfNeeded: raw) &* c.weights[k + y]
                        }
                        var v = acc &>> SIMD16<Int32>(repeating: precisionBits)
                        v.replace(with: 0, where: v .< 0)
                        v.replace(with: 255, where: v .> 255)
                        UnsafeMutableRawPointer(dstBase + yy * rowLength + i)
                            .storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: v), as: SIMD16<UInt8>.self)
                        i += 16
                    }
                    while i < rowLength {
                        var s = bias
                        for y in 0..<n { s = s &+ Int32(src[(ymin + y) * rowLength + i]) &* c.weights[k + y] }
                        dst[yy * rowLength + i] = clip8(s)
                        i += 1
                    }
                }
            }
        }
        return out
    }

    /// Plain scalar reference for ``verticalPass(_:rowLength:rowOffset:outHeight:_:)``.
    static func verticalPassScalar(
        _ input: [UInt8], rowLength: Int, rowOffset: Int, outHeight: Int, _ c: ResampleCoefficients
    ) -> [UInt8] {
        let bias: Int32 = 1 << (precisionBits - 1)
        var out = [UInt8](repeating: 0, count: outHeight * rowLength)
        for yy in 0..<outHeight {
            let ymin = c.start[yy] - rowOffset
            for i in 0..<rowLength {
                var s = bias
                for y in 0..<c.count[yy] {
                    s = s &+ Int32(input[(ymin + y) * rowLength + i]) &* c.weights[yy * c.taps + y]
                }
                out[yy * rowLength + i] = clip8(s)
            }
        }
        return out
    }

    /// Pillow's NEAREST resize (`ImagingScaleAffine`): source coordinates accumulate by repeated
    /// double addition of the scale, starting at half a step, and truncate.
    static func nearest(_ image: Image, width outW: Int, height outH: Int) -> Image {
        let a0 = Double(Float(image.width)) / Double(outW)
        let a4 = Double(Float(image.height)) / Double(outH)
        var xTable = [Int](repeating: -1, count: outW)
        var xo = a0 * 0.5
        for x in 0..<outW {
            let xin = xo < 0 ? -1 : Int(xo)
            if xin >= 0 && xin < image.width { xTable[x] = xin }
            xo += a0
        }
        var out = [UInt8](repeating: 0, count: outW * outH * 3)
        var yo = a4 * 0.5
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<outH {
                    let yi = yo < 0 ? -1 : Int(yo)
                    yo += a4
                    guard yi >= 0 && yi < image.height else { continue }
                    for x in 0..<outW where xTable[x] >= 0 {
                        let s = (yi * image.width + xTable[x]) * 3, d = (y * outW + x) * 3
                        dst[d] = src[s]
                        dst[d + 1] = src[s + 1]
                        dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return Image(uncheckedWidth: outW, height: outH, pixels: out)
    }
}
