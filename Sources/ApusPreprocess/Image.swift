/// An 8-bit RGB image in row-major, interleaved (HWC) order: what Pillow holds after
/// `Image.open(f).convert("RGB")`.
public struct Image: Sendable, Hashable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Interleaved samples per pixel; always 3 (R, G, B).
    public var channels: Int { 3 }
    /// `height * width * 3` samples, rows top to bottom, pixels left to right, R G B.
    public var pixels: [UInt8]

    /// Creates an image from interleaved RGB samples.
    ///
    /// - Throws: ``ImageError/invalidTransform(_:)`` if a size is negative or `pixels` has the
    ///   wrong length.
    public init(width: Int, height: Int, pixels: [UInt8]) throws(ImageError) {
        guard width >= 0, height >= 0 else { throw .invalidTransform("negative image size \(width)x\(height)") }
        let (area, o1) = width.multipliedReportingOverflow(by: height)
        let (count, o2) = area.multipliedReportingOverflow(by: 3)
        guard !o1, !o2, count == pixels.count else {
            throw .invalidTransform(
                "\(width)x\(height) RGB image needs \(width)*\(height)*3 samples, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Internal initializer for sizes the caller has already validated.
    init(uncheckedWidth width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// The container format of an encoded image.
public enum ImageFormat: String, Sendable, Hashable {
    case jpeg
    case png
}

/// Why an image could not be decoded or transformed. Cases name the format and, where known, the
/// byte offset in the input at which the decoder stopped.
public enum ImageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The data is neither a JPEG nor a PNG (or is empty).
    case notAnImage(reason: String)
    /// The data ends before the image does.
    case truncated(format: ImageFormat, offset: Int?, reason: String)
    /// The data is malformed (bad marker, bad Huffman code, zlib error, …).
    case corrupt(format: ImageFormat, offset: Int?, reason: String)
    /// A chunk checksum does not match (PNG).
    case badChecksum(format: ImageFormat, offset: Int?, reason: String)
    /// The header declares more pixels than ``DecodeOptions/maxPixels``; nothing was allocated.
    case tooManyPixels(format: ImageFormat, width: Int, height: Int, limit: Int)
    /// The header declares a zero width or height.
    case emptyImage(format: ImageFormat, width: Int, height: Int)
    /// A progressive JPEG has more scans than ``DecodeOptions/maxProgressiveScans``.
    case tooManyScans(limit: Int)
    /// A valid file that uses a feature Pillow does not decode either (12-bit JPEG, 2-channel JPEG…).
    case unsupported(format: ImageFormat, reason: String)
    /// Memory for the decoded image could not be allocated.
    case outOfMemory(format: ImageFormat, reason: String)
    /// A transform's parameters do not fit the image (or are invalid).
    case invalidTransform(String)

    public var description: String {
        func at(_ offset: Int?) -> String { offset.map { " at byte \($0)" } ?? "" }
        switch self {
        case .notAnImage(let reason): return "not an image: \(reason)"
        case .truncated(let format, let offset, let reason):
            return "truncated \(format.rawValue)\(at(offset)): \(reason)"
        case .corrupt(let format, let offset, let reason): return "corrupt \(format.rawValue)\(at(offset)): \(reason)"
        case .badChecksum(let format, let offset, let reason):
            return "bad checksum in \(format.rawValue)\(at(offset)): \(reason)"
        case .tooManyPixels(let format, let width, let height, let limit):
            return "\(format.rawValue) of \(width)x\(height) pixels exceeds the limit of \(limit) pixels"
        case .emptyImage(let format, let width, let height): return "\(format.rawValue) has size \(width)x\(height)"
        case .tooManyScans(let limit): return "progressive JPEG has more than \(limit) scans"
        case .unsupported(let format, let reason): return "unsupported \(format.rawValue): \(reason)"
        case .outOfMemory(let format, let reason): return "out of memory decoding \(format.rawValue): \(reason)"
        case .invalidTransform(let reason): return "invalid transform: \(reason)"
        }
    }
}
