import Foundation

/// torchvision's transforms on PIL images, reproduced with the same integer and rounding rules.
public enum Transforms {
    /// torchvision's `_compute_resized_output_size` for a PIL image of `width`×`height`:
    /// `size = [s]` resizes the shorter edge to `s` and the longer to `int(s * long / short)`
    /// (Python true division, then truncation), capped by `maxSize`; `size = [h, w]` is exact.
    ///
    /// - Returns: `(height, width)`.
    public static func resizedSize(width: Int, height: Int, size: [Int], maxSize: Int?) throws(ImageError) -> (
        height: Int, width: Int
    ) {
        guard size.allSatisfy({ $0 > 0 }) else { throw .invalidTransform("resize size \(size) must be positive") }
        switch size.count {
        case 1:
            let (short, long) = width <= height ? (width, height) : (height, width)
            guard short > 0 else { throw .invalidTransform("cannot resize an empty \(width)x\(height) image") }
            let requested = size[0]
            var newShort = requested
            var newLong = Int(Double(requested * long) / Double(short))
            if let maxSize {
                guard maxSize > requested else {
                    throw .invalidTransform(
                        "max_size = \(maxSize) must be strictly greater than the requested size for the smaller edge \(requested)"
                    )
                }
                if newLong > maxSize {
                    newShort = Int(Double(maxSize * newShort) / Double(newLong))
                    newLong = maxSize
                }
            }
            return width <= height ? (newLong, newShort) : (newShort, newLong)
        case 2:
            guard maxSize == nil else {
                throw .invalidTransform("max_size is only allowed when size gives the smaller edge (one number)")
            }
            return (size[0], size[1])
        default:
            throw .invalidTransform("resize size must have 1 or 2 elements, got \(size)")
        }
    }

    /// torchvision `F.resize` on a PIL image: Pillow resampling (always antialiased for PIL
    /// input), returning the image itself when the size does not change.
    public static func resize(
        _ image: Image, size: [Int], interpolation: Interpolation = .bilinear, maxSize: Int? = nil
    )
        throws(ImageError) -> Image
    {
        let (h, w) = try resizedSize(width: image.width, height: image.height, size: size, maxSize: maxSize)
        if h == image.height && w == image.width { return image }
        return try Resampler.resize(image, width: w, height: h, interpolation: interpolation)
    }

    /// torchvision `F.pad` with `padding_mode="constant"`: `[p]` pads every side, `[l/r, t/b]`
    /// or `[l, t, r, b]`; every channel is filled with `fill`.
    public static func pad(_ image: Image, padding: [Int], fill: Int = 0) throws(ImageError) -> Image {
        let ltrb: [Int]
        switch padding.count {
        case 1: ltrb = [padding[0], padding[0], padding[0], padding[0]]
        case 2: ltrb = [padding[0], padding[1], padding[0], padding[1]]
        case 4: ltrb = padding
        default: throw .invalidTransform("padding must have 1, 2 or 4 elements, got \(padding)")
        }
        guard ltrb.allSatisfy({ $0 >= 0 && $0 <= 1 << 20 }) else {
            throw .invalidTransform("constant padding \(padding) must be between 0 and 2^20")
        }
        guard (0...255).contains(fill) else { throw .invalidTransform("fill \(fill) is not a uint8 value") }
        return try padded(image, left: ltrb[0], top: ltrb[1], right: ltrb[2], bottom: ltrb[3], fill: UInt8(fill))
    }

    static func padded(_ image: Image, left: Int, top: Int, right: Int, bottom: Int, fill: UInt8) throws(ImageError)
        -> Image
    {
        let w = image.width + left + right, h = image.height + top + bottom
        let (area, overflow) = w.multipliedReportingOverflow(by: h)
        guard !overflow, area <= Int(Int32.max) / 3 else {
            throw .invalidTransform("padded size \(w)x\(h) is too large")
        }
        var out = [UInt8](repeating: fill, count: area * 3)
        let rowBytes = image.width * 3
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard rowBytes > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
                for y in 0..<image.height {
                    (d + ((y + top) * w + left) * 3).update(from: s + y * rowBytes, count: rowBytes)
                }
            }
        }
        return Image(uncheckedWidth: w, height: h, pixels: out)
    }

    /// torchvision `F.center_crop`: zero-pads first when the crop is larger than the image
    /// (left/top get `(c - s) // 2`, right/bottom `(c - s + 1) // 2`), then crops at
    /// `int(round((s - c) / 2.0))` — Python's round, i.e. half to even.
    ///
    /// - Parameter size: `[s]` for a square crop or `[height, width]`.
    public static func centerCrop(_ image: Image, size: [Int]) throws(ImageError) -> Image {
        guard size.count == 1 || size.count == 2 else {
            throw .invalidTransform("center crop size must have 1 or 2 elements, got \(size)")
        }
        let cropH = size[0], cropW = size.count == 2 ? size[1] : size[0]
        guard cropH > 0, cropW > 0 else { throw .invalidTransform("center crop size \(size) must be positive") }
        var image = image
        if cropW > image.width || cropH > image.height {
            let dw = Swift.max(0, cropW - image.width), dh = Swift.max(0, cropH - image.height)
            image = try padded(image, left: dw / 2, top: dh / 2, right: (dw + 1) / 2, bottom: (dh + 1) / 2, fill: 0)
            if cropW == image.width && cropH == image.height { return image }
        }
        let top = Int((Double(image.height - cropH) / 2.0).rounded(.toNearestOrEven))
        let left = Int((Double(image.width - cropW) / 2.0).rounded(.toNearestOrEven))
        return crop(image, top: top, left: left, height: cropH, width: cropW)
    }

    /// Crops a region that lies inside the image.
    static func crop(_ image: Image, top: Int, left: Int, height: Int, width: Int) -> Image {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for y in 0..<height {
                    (d + y * width * 3).update(from: s + ((top + y) * image.width + left) * 3, count: width * 3)
                }
            }
        }
        return Image(uncheckedWidth: width, height: height, pixels: out)
    }
}
