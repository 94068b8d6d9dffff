import Foundation
import Testing

@testable import ApusPreprocess

private func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
    }
    return ~crc
}

private func be32(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
}

private func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
    let typed = Array(type.utf8) + body
    return be32(UInt32(body.count)) + typed + be32(crc32(typed))
}

private func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
    [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", be32(width) + be32(height) + [8, 2, 0, 0, 0])
}

@Suite struct HandBuiltTests {
    @Test func crcMatchesKnownValue() {
        #expect(crc32(Array("IEND".utf8)) == 0xAE42_6082)
    }

    @Test func zeroSizePNGIsEmptyImage() {
        let data = Data(pngHeader(width: 0, height: 0) + chunk("IEND", []))
        #expect(throws: ImageError.emptyImage(format: .png, width: 0, height: 0)) {
            try ImageDecoder.decode(data: data)
        }
    }

    @Test func hugePNGHeaderIsRejectedBeforeAllocation() {
        let data = Data(pngHeader(width: 100_000, height: 100_000) + chunk("IEND", []))
        #expect(throws: ImageError.tooManyPixels(format: .png, width: 100_000, height: 100_000, limit: 89_478_485)) {
            try ImageDecoder.decode(data: data)
        }
    }

    @Test func hugeJPEGHeaderIsRejectedBeforeAllocation() {
        // SOI, SOF0 65000x65000 (libjpeg itself refuses more than 65500) with 3 components, then nothing.
        var bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFD, 0xE8, 0xFD, 0xE8, 0x03]
        for id in 1...3 { bytes += [UInt8(id), 0x11, 0x00] }
        // DHT/DQT missing: the header check must fire at SOS time; add a minimal SOS.
        bytes += [0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00]
        #expect(throws: ImageError.tooManyPixels(format: .jpeg, width: 65000, height: 65000, limit: 89_478_485)) {
            try ImageDecoder.decode(data: Data(bytes))
        }
    }

    @Test func garbageIsNotAnImage() {
        #expect(throws: ImageError.notAnImage(reason: "no data")) { try ImageDecoder.decode(data: Data()) }
        var generator = SystemRandomNumberGenerator()
        for length in [1, 2, 7, 100, 5000] {
            let data = Data((0..<length).map { _ in UInt8.random(in: 0...0x88, using: &generator) })
            #expect(throws: ImageError.self) { try ImageDecoder.decode(data: data) }
        }
    }

    @Test func badCRCInIHDR() {
        var bytes = pngHeader(width: 4, height: 4) + chunk("IEND", [])
        bytes[29] ^= 0x01
        do {
            _ = try ImageDecoder.decode(data: Data(bytes))
            Issue.record("decoded a PNG with a bad IHDR CRC")
        } catch {
            #expect(caseName(error) == "badChecksum", "\(error)")
        }
    }

    @Test func resizedSizeFollowsTorchvisionArithmetic() throws {
        // Hand-derived: short edge 375 → 256, long = int(256 * 500 / 375) = int(341.33) = 341.
        #expect(try Transforms.resizedSize(width: 500, height: 375, size: [256], maxSize: nil) == (256, 341))
        #expect(try Transforms.resizedSize(width: 375, height: 500, size: [256], maxSize: nil) == (341, 256))
        // max_size: long 341 > 300 → short = int(300 * 256 / 341) = int(225.2) = 225.
        #expect(try Transforms.resizedSize(width: 500, height: 375, size: [256], maxSize: 300) == (225, 300))
        #expect(try Transforms.resizedSize(width: 5, height: 7, size: [3, 4], maxSize: nil) == (3, 4))
        #expect(throws: ImageError.self) { try Transforms.resizedSize(width: 5, height: 7, size: [3], maxSize: 3) }
    }

    @Test func centerCropRoundsHalfToEven() throws {
        // Width 5 → crop 2: (5 - 2) / 2 = 1.5 → round half to even = 2; height 6 → 3: 1.5 → 2.
        let pixels = (0..<(5 * 6 * 3)).map { UInt8($0) }
        let source = try Image(width: 5, height: 6, pixels: pixels)
        let cropped = try Transforms.centerCrop(source, size: [3, 2])
        let first = ((2 * 5) + 2) * 3
        #expect(Array(cropped.pixels[0..<3]) == Array(pixels[first..<(first + 3)]))
        // Width 7 → 2: 2.5 → 2 (even); the other rounding would give 3.
        let wide = try Image(width: 7, height: 1, pixels: (0..<21).map { UInt8($0) })
        #expect(try Transforms.centerCrop(wide, size: [1, 2]).pixels == [6, 7, 8, 9, 10, 11])
        // Larger crop pads with zeros: 1x1 → 3x2: left (2-1)//2 = 0, top (3-1)//2 = 1.
        let one = try Image(width: 1, height: 1, pixels: [9, 9, 9])
        let padded = try Transforms.centerCrop(one, size: [3, 2])
        var expectedPadded = [UInt8](repeating: 0, count: 18)
        expectedPadded[6] = 9
        expectedPadded[7] = 9
        expectedPadded[8] = 9
        #expect(padded.pixels == expectedPadded)
    }

    @Test func verticalSIMDPassEqualsScalar() {
        for rowLength in [0, 1, 15, 16, 17, 31, 48, 97] {
            let inRows = 13
            let input = (0..<(inRows * rowLength)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            for interpolation in [Interpolation.bilinear, .bicubic, .lanczos] {
                let coefficients = ResampleCoefficients(
                    inSize: inRows, in0: 0, in1: Float(inRows), outSize: 5, support: interpolation == .bilinear ? 1 : 2,
                    kernel: { x in max(0, 1 - abs(x)) })
                let fast = Resampler.verticalPass(input, rowLength: rowLength, rowOffset: 0, outHeight: 5, coefficients)
                let slow = Resampler.verticalPassScalar(
                    input, rowLength: rowLength, rowOffset: 0, outHeight: 5, coefficients)
                #expect(fast == slow, "row length \(rowLength)")
            }
        }
    }

    @Test func specJSONRoundTripsAndPresetMatchesTorchvision() throws {
        let json = """
            {"steps":[{"op":"resize","size":[256],"interpolation":"bilinear","antialias":true},
            {"op":"center_crop","size":[224]},{"op":"pil_to_tensor"},{"op":"convert_image_dtype","dtype":"float32"},
            {"op":"normalize","mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}]}
            """
        let spec = try JSONDecoder().decode(PreprocessSpec.self, from: Data(json.utf8))
        #expect(spec == PreprocessSpec.imageClassification(cropSize: 224))
        let again = try JSONDecoder().decode(PreprocessSpec.self, from: try JSONEncoder().encode(spec))
        #expect(again == spec)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(PreprocessSpec.self, from: Data(#"{"steps":[{"op":"blur"}]}"#.utf8))
        }
    }

    @Test func toTensorAndNormalizeByHand() throws {
        let source = try Image(width: 1, height: 1, pixels: [0, 128, 255])
        let spec = PreprocessSpec(steps: [.toTensor, .normalize(mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 2])])
        let tensor = try spec.apply(to: source)
        #expect(tensor.shape.dimensions == [1, 3, 1, 1])
        let values = tensor.withUnsafeBufferPointer(as: Float.self) { Array($0) }
        let expected: [Float] = [(0 - 0.5) / 0.25, (Float(128) / 255 - 0.5) / 0.5, (1 - 0.5) / 2]
        #expect(values == expected)
    }
}
