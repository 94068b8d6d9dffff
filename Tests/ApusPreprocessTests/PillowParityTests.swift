import Foundation
import Testing

@testable import ApusPreprocess

@Suite struct PillowParityTests {
    @Test func decodedPixelsEqualPillow() throws {
        guard let fixtures = try Fixtures.load() else { return }
        let manifest = try fixtures.manifest
        #expect(manifest.images.count >= 30)
        for entry in manifest.images {
            let decoded: Image
            do {
                decoded = try ImageDecoder.decode(data: try fixtures.imageData(entry.file))
            } catch {
                Issue.record("\(entry.name) (\(entry.mode)): \(error)")
                continue
            }
            let expected = try image(from: try fixtures.reference("\(entry.name).decoded"))
            #expect(decoded.width == expected.width && decoded.height == expected.height, "\(entry.name) size")
            guard decoded.pixels.count == expected.pixels.count else { continue }
            let different = zip(decoded.pixels, expected.pixels).filter { $0 != $1 }.count
            #expect(
                different == 0, "\(entry.name) (\(entry.mode)): \(different) of \(expected.pixels.count) samples differ"
            )
        }
    }

    @Test func exifOrientationMatchesExifTranspose() throws {
        guard let fixtures = try Fixtures.load() else { return }
        let data = try fixtures.imageData("jpeg_exif6.jpg")
        var options = DecodeOptions()
        options.applyEXIFOrientation = true
        let rotated = try ImageDecoder.decode(data: data, options: options)
        let expected = try image(from: try fixtures.reference("jpeg_exif6.exif_transposed"))
        #expect(rotated == expected)
        let plain = try ImageDecoder.decode(data: data)
        #expect(plain == (try image(from: try fixtures.reference("jpeg_exif6.decoded"))))
        #expect(plain.width == rotated.height && plain.height == rotated.width)
    }

    /// Runs every pipeline on the image Pillow decoded (so decoding and transforms are tested
    /// separately) and compares with torchvision's output.
    @Test func pipelinesMatchTorchvision() throws {
        guard let fixtures = try Fixtures.load() else { return }
        var totalSamples = 0
        var exactSamples = 0
        var worst: [String: Double] = [:]
        for entry in try fixtures.manifest.images {
            let input = try image(from: try fixtures.reference("\(entry.name).decoded"))
            for (name, spec) in entry.pipelines.sorted(by: { $0.key < $1.key }) {
                let label = "\(entry.name).\(name)"
                let output: Tensor
                do {
                    output = try spec.apply(to: input)
                } catch {
                    Issue.record("\(label): \(error)")
                    continue
                }
                let reference = try fixtures.reference(label)
                if let expected = reference.uint8 {
                    // HWC uint8 reference vs [1, 3, H, W] uint8 output.
                    let (h, w) = (reference.shape[0], reference.shape[1])
                    #expect(output.shape.dimensions == [1, 3, h, w], "\(label) shape")
                    guard output.shape.dimensions == [1, 3, h, w] else { continue }
                    var maxDifference = 0
                    var exact = 0
                    output.withUnsafeBufferPointer(as: UInt8.self) { got in
                        for c in 0..<3 {
                            for i in 0..<(h * w) {
                                let d = abs(Int(got[c * h * w + i]) - Int(expected[i * 3 + c]))
                                maxDifference = max(maxDifference, d)
                                if d == 0 { exact += 1 }
                            }
                        }
                    }
                    totalSamples += h * w * 3
                    exactSamples += exact
                    #expect(maxDifference <= 1, "\(label): max difference \(maxDifference)")
                    if exact != h * w * 3 { worst[label] = Double(exact) / Double(h * w * 3) }
                } else if let expected = reference.float32 {
                    #expect(output.shape.dimensions == [1] + reference.shape, "\(label) shape")
                    guard output.shape.dimensions == [1] + reference.shape else { continue }
                    var maxDifference: Float = 0
                    output.withUnsafeBufferPointer(as: Float.self) { got in
                        for i in 0..<expected.count { maxDifference = max(maxDifference, abs(got[i] - expected[i])) }
                    }
                    #expect(maxDifference <= 1e-6, "\(label): max difference \(maxDifference)")
                }
            }
        }
        let share = Double(exactSamples) / Double(max(totalSamples, 1))
        print("ApusPreprocess parity: \(exactSamples) of \(totalSamples) uint8 samples exactly equal (\(share * 100)%)")
        for (label, s) in worst.sorted(by: { $0.key < $1.key }) { print("  \(label): \(s * 100)% exact") }
        #expect(exactSamples == totalSamples, "exact share \(share)")
    }

    @Test func hostileInputsGiveTypedErrors() throws {
        guard let fixtures = try Fixtures.load() else { return }
        for hostile in try fixtures.manifest.hostile {
            let data = try fixtures.imageData(hostile.file)
            do {
                let image = try ImageDecoder.decode(data: data)
                Issue.record("\(hostile.name): decoded to \(image.width)x\(image.height), expected \(hostile.expected)")
            } catch {
                #expect(caseName(error) == hostile.expected, "\(hostile.name): \(error)")
            }
        }
    }

    @Test func lenientModeAcceptsWhatStrictModeRejects() throws {
        guard let fixtures = try Fixtures.load() else { return }
        let data = try fixtures.imageData("hostile_jpeg_corrupt_entropy.bin")
        var options = DecodeOptions()
        options.strictJPEGWarnings = false
        // Must not crash; whatever libjpeg reconstructs or a typed error are both acceptable.
        _ = try? ImageDecoder.decode(data: data, options: options)
    }

    @Test func progressiveScanLimit() throws {
        guard let fixtures = try Fixtures.load() else { return }
        let data = try fixtures.imageData("jpeg_progressive.jpg")
        var options = DecodeOptions()
        options.maxProgressiveScans = 2
        #expect(throws: ImageError.tooManyScans(limit: 2)) { try ImageDecoder.decode(data: data, options: options) }
        options.maxProgressiveScans = 300
        _ = try ImageDecoder.decode(data: data, options: options)
    }

    @Test func pixelLimitIsConfigurable() throws {
        guard let fixtures = try Fixtures.load() else { return }
        let data = try fixtures.imageData("jpeg_q90_420.jpg")  // 203x157 = 31871 pixels
        var options = DecodeOptions()
        options.maxPixels = 31_870
        #expect(throws: ImageError.tooManyPixels(format: .jpeg, width: 203, height: 157, limit: 31_870)) {
            try ImageDecoder.decode(data: data, options: options)
        }
        options.maxPixels = 31_871
        #expect(try ImageDecoder.decode(data: data, options: options).width == 203)
    }

    @Test func dctScalingIsOptInAndApproximate() throws {
        guard let fixtures = try Fixtures.load() else { return }
        var options = DecodeOptions()
        options.allowDCTScaling = 2
        let half = try ImageDecoder.decode(data: try fixtures.imageData("rocket.jpg"), options: options)
        #expect(half.width == 320 && half.height == 214)
    }
}
