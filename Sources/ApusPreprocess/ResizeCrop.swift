import CApusCodecs
import Foundation

/// torchvision's `Resize` followed by `CenterCrop`, computing only the pixels the crop keeps.
///
/// Every output sample of Pillow's two passes depends only on its own source window, so the
/// cropped window of the resized image is the same bytes whether or not the rest is computed:
/// the horizontal pass runs on the source rows the kept output rows read, for the kept output
/// columns only, then the vertical pass on the kept output rows.
struct ResizeCropPlan {
    let inWidth: Int
    let inHeight: Int
    let cropWidth: Int
    let cropHeight: Int
    /// Source rows the kept output rows read.
    let sourceRows: Range<Int>
    /// Horizontal pass for the kept columns (absolute source columns); nil when the width does
    /// not change and the kept columns are copied from `left`.
    let horizontal: ResampleTable?
    let left: Int
    /// Vertical pass for the kept rows (starts relative to `sourceRows`); nil when the height
    /// does not change.
    let vertical: ResampleTable?

    /// Bytes of one intermediate row (after the horizontal pass).
    var rowBytes: Int { cropWidth * 3 }

    /// The plan for `resize(size, interpolation, maxSize)` then `centerCrop(crop)` on a
    /// `width`×`height` image, or nil when the general path must run (nearest, padding crops,
    /// a resize that changes nothing, or parameters the general path rejects with an error).
    init?(width: Int, height: Int, size: [Int], interpolation: Interpolation, maxSize: Int?, crop: [Int]) {
        guard width >= 1, height >= 1, let filter = PillowFilter.of(interpolation) else { return nil }
        guard let (outH, outW) = try? Transforms.resizedSize(width: width, height: height, size: size, maxSize: maxSize)
        else { return nil }
        guard outW >= 1, outH >= 1, outW != width || outH != height else { return nil }
        let (area, overflow) = outW.multipliedReportingOverflow(by: outH)
        guard !overflow, area <= Int(Int32.max) / 3 else { return nil }
        guard crop.count == 1 || crop.count == 2 else { return nil }
        let cropH = crop[0], cropW = crop.count == 2 ? crop[1] : crop[0]
        guard cropH > 0, cropW > 0, cropH <= outH, cropW <= outW else { return nil }
        let top = Int((Double(outH - cropH) / 2.0).rounded(.toNearestOrEven))
        let left = Int((Double(outW - cropW) / 2.0).rounded(.toNearestOrEven))
        inWidth = width
        inHeight = height
        cropWidth = cropW
        cropHeight = cropH
        if outH != height {
            let c = ResampleCoefficients(
                inSize: height, in0: 0, in1: Float(height), outSize: outH, support: filter.support,
                kernel: filter.kernel)
            let kept = top..<(top + cropH)
            let first = c.start[top]
            let end = kept.map { c.start[$0] + c.count[$0] }.max() ?? first
            guard end > first else { return nil }
            sourceRows = first..<end
            vertical = c.table(outputs: kept, startOffset: first)
        } else {
            sourceRows = top..<(top + cropH)
            vertical = nil
        }
        if outW != width {
            let c = ResampleCoefficients(
                inSize: width, in0: 0, in1: Float(width), outSize: outW, support: filter.support,
                kernel: filter.kernel)
            horizontal = c.table(outputs: left..<(left + cropW))
            self.left = 0
        } else {
            horizontal = nil
            self.left = left
        }
    }

    /// Horizontal pass (or column copy) of source rows `first..<first+count`, `stride` bytes apart
    /// starting at `rows`, into `intermediate` (one row per entry of ``sourceRows``). Rows outside
    /// ``sourceRows`` are skipped.
    func consume(
        rows: UnsafePointer<UInt8>, first: Int, count: Int, stride: Int, readableEnd: UnsafePointer<UInt8>,
        into intermediate: UnsafeMutablePointer<UInt8>
    ) {
        let lo = Swift.max(first, sourceRows.lowerBound), hi = Swift.min(first + count, sourceRows.upperBound)
        guard lo < hi else { return }
        let input = rows + (lo - first) * stride
        let output = intermediate + (lo - sourceRows.lowerBound) * rowBytes
        if let horizontal {
            Resampler.horizontalRows(
                input, stride: stride, end: readableEnd, rowCount: hi - lo, into: output, outStride: rowBytes,
                horizontal)
        } else {
            for r in 0..<(hi - lo) {
                (output + r * rowBytes).update(from: input + r * stride + left * 3, count: rowBytes)
            }
        }
    }

    /// The cropped image from a filled intermediate buffer.
    func finish(_ intermediate: UnsafePointer<UInt8>) -> Image {
        guard let vertical else {
            return Image(
                uncheckedWidth: cropWidth, height: cropHeight,
                pixels: [UInt8](UnsafeBufferPointer(start: intermediate, count: cropHeight * rowBytes)))
        }
        let pixels = [UInt8](unsafeUninitializedCapacity: cropHeight * rowBytes) { buffer, initialized in
            if let base = buffer.baseAddress {
                Resampler.verticalRows(
                    intermediate, rowLength: rowBytes, into: base, outputRows: 0..<cropHeight, vertical)
            }
            initialized = cropHeight * rowBytes
        }
        return Image(uncheckedWidth: cropWidth, height: cropHeight, pixels: pixels)
    }

    /// Runs the plan on a decoded image.
    func apply(to image: Image) -> Image {
        let intermediate = UnsafeMutablePointer<UInt8>.allocate(capacity: Swift.max(1, sourceRows.count * rowBytes))
        defer { intermediate.deallocate() }
        image.pixels.withUnsafeBufferPointer { src in
            guard let base = src.baseAddress else { return }
            consume(
                rows: base, first: 0, count: image.height, stride: image.width * 3, readableEnd: base + src.count,
                into: intermediate)
        }
        return finish(intermediate)
    }
}

/// State shared with the C decoder's callbacks while a JPEG streams through a ``ResizeCropPlan``.
private final class StreamingResizeCrop {
    let makePlan: (Int, Int) -> ResizeCropPlan?
    var plan: ResizeCropPlan?
    /// Intermediate rows (plan) or the whole decoded image (no plan: general path afterwards).
    var buffer: UnsafeMutablePointer<UInt8>?
    var width = 0
    var height = 0

    init(makePlan: @escaping (Int, Int) -> ResizeCropPlan?) { self.makePlan = makePlan }
    deinit { buffer?.deallocate() }

    func begin(width: Int, height: Int) -> Bool {
        self.width = width
        self.height = height
        plan = makePlan(width, height)
        let bytes = plan.map { $0.sourceRows.count * $0.rowBytes } ?? width * height * 3
        buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: Swift.max(1, bytes))
        return true
    }

    func rows(_ rows: UnsafePointer<UInt8>, first: Int, count: Int, stride: Int) {
        guard let buffer else { return }
        if let plan {
            plan.consume(
                rows: rows, first: first, count: count, stride: stride,
                readableEnd: rows + count * stride + 64, into: buffer)
        } else {
            (buffer + first * stride).update(from: rows, count: count * stride)
        }
    }
}

extension PreprocessSpec {
    /// Decodes a JPEG or PNG file and runs the pipeline: the same tensor, bit for bit, as
    /// `apply(to: ImageDecoder.decode(data: data, options: options))`, but faster for the usual
    /// resize → center crop pipelines on JPEGs: the scanlines stream from libjpeg through the
    /// horizontal resize pass (only the rows and columns the crop keeps) and the decoded image is
    /// never stored.
    ///
    /// - Throws: ``ImageError`` exactly as decoding and then ``apply(to:)`` would.
    public func apply(toImageData data: Data, options: DecodeOptions = DecodeOptions()) throws(ImageError) -> Tensor {
        guard ImageDecoder.format(of: data) == .jpeg, !options.applyEXIFOrientation, options.allowDCTScaling == 1,
            steps.count >= 2, case .resize(let size, let interpolation, _, let maxSize) = steps[0],
            case .centerCrop(let crop) = steps[1]
        else {
            return try apply(to: ImageDecoder.decode(data: data, options: options))
        }
        let sink = StreamingResizeCrop { width, height in
            ResizeCropPlan(
                width: width, height: height, size: size, interpolation: interpolation, maxSize: maxSize, crop: crop)
        }
        var settings = ImageDecoder.cOptions(options)
        var result = apus_decode_result()
        let context = Unmanaged.passUnretained(sink).toOpaque()
        let status = data.withUnsafeBytes { raw -> apus_codec_status in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress else { return APUS_CODEC_NOT_IMAGE }
            return apus_decode_jpeg_rows(
                base, raw.count, &settings, &result, 16,
                { context, width, height in
                    guard let context else { return 1 }
                    let sink = Unmanaged<StreamingResizeCrop>.fromOpaque(context).takeUnretainedValue()
                    return sink.begin(width: Int(width), height: Int(height)) ? 0 : 1
                },
                { context, first, count, rows, stride in
                    guard let context, let rows else { return }
                    let sink = Unmanaged<StreamingResizeCrop>.fromOpaque(context).takeUnretainedValue()
                    sink.rows(rows, first: Int(first), count: Int(count), stride: stride)
                }, context)
        }
        withExtendedLifetime(sink) {}
        try ImageDecoder.check(status, result, format: .jpeg, options: options)
        guard let buffer = sink.buffer else { throw .outOfMemory(format: .jpeg, reason: "decoder returned no pixels") }
        if let plan = sink.plan {
            return try apply(to: plan.finish(buffer), fromStep: 2)
        }
        let image = Image(
            uncheckedWidth: sink.width, height: sink.height,
            pixels: [UInt8](UnsafeBufferPointer(start: buffer, count: sink.width * sink.height * 3)))
        return try apply(to: image)
    }
}
