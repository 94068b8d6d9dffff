import CApusCodecs
import Foundation

/// Options for ``ImageDecoder/decode(data:options:)``.
public struct DecodeOptions: Sendable, Hashable {
    /// Pillow's `Image.MAX_IMAGE_PIXELS` (89,478,485: a 1024×1024×3 × 4 / 3 … "decompression bomb"
    /// threshold). Images whose header declares more pixels are rejected before anything is
    /// allocated. Pillow only warns between 1× and 2× this value; Apus refuses above 1×.
    public static let pillowMaxImagePixels = 89_478_485

    /// Largest `width * height` accepted (checked from the header, before allocating).
    public var maxPixels: Int = DecodeOptions.pillowMaxImagePixels
    /// Largest number of scans a progressive JPEG may have (real files have ≤ ~10; hostile ones
    /// can have thousands of tiny scans, each costing a full pass over the coefficients).
    public var maxProgressiveScans: Int = 300
    /// When `true` (the default), libjpeg warnings about corrupt entropy-coded data are errors.
    /// Pillow ignores them and returns whatever libjpeg reconstructed; set this to `false` to get
    /// Pillow's lenient behaviour (and its pixels) for such files.
    public var strictJPEGWarnings: Bool = true
    /// Rotate/flip the image as its EXIF orientation tag says (Pillow's `ImageOps.exif_transpose`).
    /// Off by default, like `Image.open`.
    public var applyEXIFOrientation: Bool = false
    /// APPROXIMATE: let libjpeg decode a JPEG at 1/2, 1/4 or 1/8 size via DCT scaling (much faster
    /// for big photos that are about to be downscaled). The pixels then differ from Pillow's. Must be
    /// 1 (exact, default), 2, 4 or 8; ignored for PNG.
    public var allowDCTScaling: Int = 1

    /// Creates options with Pillow-compatible defaults.
    public init() {}
}

/// Decodes JPEG and PNG files to 8-bit RGB exactly as Pillow's `Image.open(f).convert("RGB")`.
public enum ImageDecoder {
    /// Detects the format from the first bytes.
    public static func format(of data: Data) -> ImageFormat? {
        let head = [UInt8](data.prefix(8))
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }

    /// Decodes `data` (a whole JPEG or PNG file) to RGB.
    ///
    /// - Throws: ``ImageError`` describing what is wrong and where; never crashes or exits on
    ///   malformed input.
    public static func decode(data: Data, options: DecodeOptions = DecodeOptions()) throws(ImageError) -> Image {
        guard !data.isEmpty else { throw .notAnImage(reason: "no data") }
        guard let format = format(of: data) else {
            let head = data.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw .notAnImage(reason: "signature \(head) is neither JPEG nor PNG")
        }
        guard [1, 2, 4, 8].contains(options.allowDCTScaling) else {
            throw .invalidTransform("allowDCTScaling must be 1, 2, 4 or 8, not \(options.allowDCTScaling)")
        }
        var cOptions = apus_decode_options(
            max_pixels: UInt64(Swift.max(0, options.maxPixels)),
            max_scans: Int32(clamping: Swift.max(1, options.maxProgressiveScans)),
            strict_warnings: options.strictJPEGWarnings ? 1 : 0,
            dct_scale_denom: Int32(options.allowDCTScaling))
        if options.maxPixels <= 0 { cOptions.max_pixels = 1 }
        var result = apus_decode_result()
        let status = data.withUnsafeBytes { raw -> apus_codec_status in
            let base = raw.bindMemory(to: UInt8.self).baseAddress
            guard let base else { return APUS_CODEC_NOT_IMAGE }
            switch format {
            case .jpeg: return apus_decode_jpeg(base, raw.count, &cOptions, &result)
            case .png: return apus_decode_png(base, raw.count, &cOptions, &result)
            }
        }
        let message = withUnsafeBytes(of: result.message) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        let offset: Int? = result.error_offset >= 0 ? Int(result.error_offset) : nil
        let width = Int(result.width)
        let height = Int(result.height)
        switch status {
        case APUS_CODEC_OK: break
        case APUS_CODEC_NOT_IMAGE: throw .notAnImage(reason: message)
        case APUS_CODEC_TRUNCATED: throw .truncated(format: format, offset: offset, reason: message)
        case APUS_CODEC_TOO_LARGE:
            throw .tooManyPixels(format: format, width: width, height: height, limit: options.maxPixels)
        case APUS_CODEC_EMPTY: throw .emptyImage(format: format, width: width, height: height)
        case APUS_CODEC_UNSUPPORTED: throw .unsupported(format: format, reason: message)
        case APUS_CODEC_OUT_OF_MEMORY: throw .outOfMemory(format: format, reason: message)
        case APUS_CODEC_TOO_MANY_SCANS: throw .tooManyScans(limit: options.maxProgressiveScans)
        case APUS_CODEC_BAD_CRC: throw .badChecksum(format: format, offset: offset, reason: message)
        default: throw .corrupt(format: format, offset: offset, reason: message)
        }
        guard let pixelPointer = result.pixels else {
            throw .outOfMemory(format: format, reason: "decoder returned no pixels")
        }
        defer { apus_free(pixelPointer) }
        let count = width * height * 3
        let pixels = [UInt8](UnsafeBufferPointer(start: pixelPointer, count: count))
        let image = Image(uncheckedWidth: width, height: height, pixels: pixels)
        guard options.applyEXIFOrientation else { return image }
        let orientation = EXIF.orientation(in: data, format: format) ?? 1
        return image.transposed(forEXIFOrientation: orientation)
    }
}
