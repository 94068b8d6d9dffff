import CApusCodecs
import Foundation
import Testing

@testable import ApusPreprocess

/// The fast paths (AVX2 kernels, crop-window resizing, streamed JPEG decoding) against the plain
/// reference code they replace.
@Suite(.serialized) struct FastPathTests {
    /// Deterministic pseudo-random bytes (a 64-bit LCG), so failures reproduce.
    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    static let filters: [Interpolation] = [.bilinear, .bicubic, .box, .hamming, .lanczos]

    /// Output widths 0 (no pixels), 1, SIMD-quad edges and a prime; input widths that put the
    /// last windows at the very end of the buffer (the kernel's bounds fallback).
    @Test func horizontalKernelsEqualScalarReference() {
        for interpolation in Self.filters {
            guard let filter = PillowFilter.of(interpolation) else { continue }
            for (inWidth, outWidth) in [(1, 1), (5, 3), (7, 3), (9, 4), (16, 5), (17, 13), (97, 31), (40, 97), (3, 8)] {
                let rows = 3
                let input = Self.bytes(inWidth * rows * 3, seed: UInt64(inWidth * 131 + outWidth))
                let c = ResampleCoefficients(
                    inSize: inWidth, in0: 0, in1: Float(inWidth), outSize: outWidth, support: filter.support,
                    kernel: filter.kernel)
                let reference = Resampler.horizontalPassScalar(
                    input, width: inWidth, rows: 0..<rows, outWidth: outWidth, c)
                let simd = Resampler.horizontalPass(input, width: inWidth, rows: 0..<rows, outWidth: outWidth, c)
                _ = apus_resample_simd(1)
                let portable = Resampler.horizontalPass(input, width: inWidth, rows: 0..<rows, outWidth: outWidth, c)
                _ = apus_resample_simd(0)
                #expect(simd == reference, "\(interpolation) \(inWidth)->\(outWidth)")
                #expect(portable == reference, "\(interpolation) \(inWidth)->\(outWidth) portable")
            }
        }
    }

    @Test func verticalKernelsEqualScalarReference() {
        for rowLength in [0, 1, 15, 16, 17, 31, 48, 97] {
            for interpolation in Self.filters {
                guard let filter = PillowFilter.of(interpolation) else { continue }
                for (inRows, outRows) in [(13, 5), (4, 9)] {
                    let input = Self.bytes(inRows * rowLength, seed: UInt64(rowLength * 7 + inRows))
                    let c = ResampleCoefficients(
                        inSize: inRows, in0: 0, in1: Float(inRows), outSize: outRows, support: filter.support,
                        kernel: filter.kernel)
                    let reference = Resampler.verticalPassScalar(
                        input, rowLength: rowLength, rowOffset: 0, outHeight: outRows, c)
                    let simd = Resampler.verticalPass(input, rowLength: rowLength, rowOffset: 0, outHeight: outRows, c)
                    _ = apus_resample_simd(1)
                    let portable = Resampler.verticalPass(
                        input, rowLength: rowLength, rowOffset: 0, outHeight: outRows, c)
                    _ = apus_resample_simd(0)
                    #expect(simd == reference, "\(interpolation) length \(rowLength)")
                    #expect(portable == reference, "\(interpolation) length \(rowLength) portable")
                }
            }
        }
    }

    /// Resizing only the crop window gives the bytes of resizing everything and then cropping,
    /// including when one axis keeps its size (that pass is skipped) and odd crop offsets.
    @Test func cropWindowEqualsResizeThenCrop() throws {
        let cases: [(w: Int, h: Int, size: [Int], crop: [Int])] = [
            (97, 61, [32], [24]), (61, 97, [32], [31]), (50, 40, [40, 33], [21, 17]), (50, 40, [33, 50], [20, 7]),
            (40, 50, [40, 20], [40, 9]), (7, 5, [9], [9]), (1000, 3, [2], [2, 1]), (3, 1, [2, 5], [1, 4]),
        ]
        for (index, item) in cases.enumerated() {
            let image = try Image(
                width: item.w, height: item.h, pixels: Self.bytes(item.w * item.h * 3, seed: UInt64(index)))
            for interpolation in Self.filters {
                let full = try Transforms.centerCrop(
                    Transforms.resize(image, size: item.size, interpolation: interpolation), size: item.crop)
                let plan = try #require(
                    ResizeCropPlan(
                        width: item.w, height: item.h, size: item.size, interpolation: interpolation, maxSize: nil,
                        crop: item.crop), "case \(index)")
                #expect(plan.apply(to: image) == full, "case \(index) \(interpolation)")
            }
        }
        // Cases the general path must handle: nearest, crop larger than the image, no-op resize.
        #expect(ResizeCropPlan(width: 9, height: 9, size: [4], interpolation: .nearest, maxSize: nil, crop: [2]) == nil)
        #expect(
            ResizeCropPlan(width: 9, height: 9, size: [4], interpolation: .bilinear, maxSize: nil, crop: [5]) == nil)
        #expect(
            ResizeCropPlan(width: 9, height: 9, size: [9], interpolation: .bilinear, maxSize: nil, crop: [5]) == nil)
    }

    /// Streaming every fixture (JPEG and PNG, all pipelines) gives exactly the tensor of decoding
    /// first, and hostile files give the same typed error.
    @Test func streamedDecodeEqualsDecodeThenApply() throws {
        guard let fixtures = try Fixtures.load() else { return }
        var compared = 0
        for entry in try fixtures.manifest.images {
            let data = try fixtures.imageData(entry.file)
            let decoded = try ImageDecoder.decode(data: data)
            for (name, spec) in entry.pipelines.sorted(by: { $0.key < $1.key }) {
                let expected = try spec.apply(to: decoded)
                let streamed = try spec.apply(toImageData: data)
                #expect(streamed.isBitwiseEqual(to: expected), "\(entry.name).\(name)")
                compared += 1
            }
        }
        #expect(compared > 100)
        let preset = PreprocessSpec.imageClassification(cropSize: 224)
        for hostile in try fixtures.manifest.hostile {
            let data = try fixtures.imageData(hostile.file)
            do {
                _ = try preset.apply(toImageData: data)
                Issue.record("\(hostile.name): no error, expected \(hostile.expected)")
            } catch {
                #expect(caseName(error) == hostile.expected, "\(hostile.name): \(error)")
            }
        }
    }
}
