import Foundation

/// A bounded reader of the EXIF orientation tag (0x0112) from a JPEG APP1 segment or a PNG eXIf
/// chunk. Every offset is checked against the segment, so hostile EXIF data yields `nil`.
enum EXIF {
    /// The orientation (1…8), or `nil` when absent or malformed.
    static func orientation(in data: Data, format: ImageFormat) -> Int? {
        let bytes = [UInt8](data)
        guard let tiff = tiffBlock(in: bytes, format: format) else { return nil }
        return orientation(tiff: tiff)
    }

    private static func tiffBlock(in bytes: [UInt8], format: ImageFormat) -> ArraySlice<UInt8>? {
        switch format {
        case .jpeg:
            var i = 2
            // Walk marker segments up to the first SOS; at most 64 segments.
            for _ in 0..<64 {
                guard i + 4 <= bytes.count, bytes[i] == 0xFF else { return nil }
                let marker = bytes[i + 1]
                if marker == 0xDA || marker == 0xD9 { return nil }
                let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
                guard length >= 2, i + 2 + length <= bytes.count else { return nil }
                let body = bytes[(i + 4)..<(i + 2 + length)]
                if marker == 0xE1, body.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]) {
                    return body.dropFirst(6)
                }
                i += 2 + length
            }
            return nil
        case .png:
            var i = 8
            for _ in 0..<4096 {
                guard i + 8 <= bytes.count else { return nil }
                let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
                let type = bytes[(i + 4)..<(i + 8)]
                guard length >= 0, i + 8 + length <= bytes.count else { return nil }
                if type.elementsEqual([0x65, 0x58, 0x49, 0x66]) {  // eXIf
                    let body = bytes[(i + 8)..<(i + 8 + length)]
                    return body.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]) ? body.dropFirst(6) : body
                }
                if type.elementsEqual([0x49, 0x45, 0x4E, 0x44]) { return nil }  // IEND
                i += 12 + length
            }
            return nil
        }
    }

    private static func orientation(tiff: ArraySlice<UInt8>) -> Int? {
        let t = Array(tiff)
        guard t.count >= 8 else { return nil }
        let little: Bool
        if t[0] == 0x49, t[1] == 0x49 {
            little = true
        } else if t[0] == 0x4D, t[1] == 0x4D {
            little = false
        } else {
            return nil
        }
        func u16(_ o: Int) -> Int? {
            guard o >= 0, o + 2 <= t.count else { return nil }
            return little ? Int(t[o]) | Int(t[o + 1]) << 8 : Int(t[o]) << 8 | Int(t[o + 1])
        }
        func u32(_ o: Int) -> Int? {
            guard let a = u16(o), let b = u16(o + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<Swift.min(count, 512) {
            let o = ifd + 2 + entry * 12
            guard let tag = u16(o) else { return nil }
            if tag == 0x0112 {
                guard let type = u16(o + 2), type == 3, let value = u16(o + 8), (1...8).contains(value) else {
                    return nil
                }
                return value
            }
        }
        return nil
    }
}

extension Image {
    /// The image rotated/flipped as Pillow's `ImageOps.exif_transpose` does for `orientation`
    /// (1 or unknown values leave it unchanged).
    public func transposed(forEXIFOrientation orientation: Int) -> Image {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swaps = orientation >= 5
        let outW = swaps ? h : w, outH = swaps ? w : h
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<outH {
                    for x in 0..<outW {
                        let sx: Int, sy: Int
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - x, y)  // FLIP_LEFT_RIGHT
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)  // ROTATE_180
                        case 4: (sx, sy) = (x, h - 1 - y)  // FLIP_TOP_BOTTOM
                        case 5: (sx, sy) = (y, x)  // TRANSPOSE
                        case 6: (sx, sy) = (y, h - 1 - x)  // ROTATE_270 (clockwise)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)  // TRANSVERSE
                        default: (sx, sy) = (w - 1 - y, x)  // 8: ROTATE_90 (counter-clockwise)
                        }
                        let s = (sy * w + sx) * 3, d = (y * outW + x) * 3
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
