import Foundation
import Testing

@testable import ApusTensor

/// Expects `body` to throw ``TensorError/invalidNPY(offset:reason:)`` whose reason contains `fragment`.
func expectInvalidNPY(
    _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record(
            "expected invalidNPY containing \"\(fragment)\", nothing was thrown", sourceLocation: sourceLocation)
    } catch {
        guard let error = error as? TensorError, case .invalidNPY(_, let reason) = error else {
            Issue.record("expected invalidNPY, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(reason.contains(fragment), "reason: \(reason)", sourceLocation: sourceLocation)
    }
}

@Suite struct NPYReadTests {
    @Test func readsNumpyFloat32() throws {
        let tensor = try Tensor(npyData: Data(NumpyFixtures.float32_2x3))
        #expect(tensor.dtype == .float32)
        #expect(tensor.shape == [2, 3])
        let values = try tensor.scalars(as: Float.self)
        #expect(values == [1.5, -2, 3, 0.25, Float(1e-3), -0.0])
        #expect(values[5].sign == .minus)
    }

    @Test func readsNumpyFloat16Bits() throws {
        let tensor = try Tensor(npyData: Data(NumpyFixtures.float16_3))
        #expect(tensor.dtype == .float16)
        #expect(tensor.shape == [3])
        // IEEE half bit patterns of 1, -2.5 and 65504.
        let bits = Array(UnsafeBufferPointer(start: tensor.rawPointer.assumingMemoryBound(to: UInt16.self), count: 3))
        #expect(bits == [0x3C00, 0xC100, 0x7BFF])
    }

    @Test func readsNumpyScalarAndEmpty() throws {
        let scalar = try Tensor(npyData: Data(NumpyFixtures.int64_scalar))
        #expect(scalar.shape.rank == 0)
        #expect(try scalar.scalars(as: Int64.self) == [-7])
        let empty = try Tensor(npyData: Data(NumpyFixtures.int32_2x0))
        #expect(empty.shape == [2, 0])
        #expect(empty.dtype == .int32)
        #expect(empty.elementCount == 0)
    }

    @Test func readsNumpyIntegersAndBool() throws {
        #expect(try Tensor(npyData: Data(NumpyFixtures.int8_4)).scalars(as: Int8.self) == [-128, -1, 0, 127])
        let bytes = try Tensor(npyData: Data(NumpyFixtures.uint8_2x2))
        #expect(bytes.shape == [2, 2])
        #expect(try bytes.scalars(as: UInt8.self) == [0, 1, 254, 255])
        #expect(try Tensor(npyData: Data(NumpyFixtures.bool_3)).scalars(as: Bool.self) == [true, false, true])
    }

    @Test func readsVersions2And3() throws {
        for fixture in [NumpyFixtures.float32_3x2_v2, NumpyFixtures.float32_3x2_v3] {
            let tensor = try Tensor(npyData: Data(fixture))
            #expect(tensor.shape == [3, 2])
            #expect(try tensor.scalars(as: Float.self) == [0, 1, 2, 3, 4, 5])
        }
    }

    @Test func readsFromADataSlice() throws {
        // A Data slice whose startIndex is not 0 must still be read from its own start.
        let padded = Data([9, 9, 9] + NumpyFixtures.int8_4)
        let tensor = try Tensor(npyData: padded[3...])
        #expect(try tensor.scalars(as: Int8.self) == [-128, -1, 0, 127])
    }
}

@Suite struct NPYWriteTests {
    @Test func writesBytesIdenticalToNumpy() throws {
        let cases: [(Tensor, [UInt8])] = [
            (
                Tensor(shape: [2, 3], scalars: [1.5, -2, 3, 0.25, Float(1e-3), -0.0] as [Float]),
                NumpyFixtures.float32_2x3
            ),
            (Tensor(scalar: Int64(-7)), NumpyFixtures.int64_scalar),
            (try Tensor(zeros: [2, 0], dtype: .int32), NumpyFixtures.int32_2x0),
            (Tensor(shape: [4], scalars: [-128, -1, 0, 127] as [Int8]), NumpyFixtures.int8_4),
            (Tensor(shape: [2, 2], scalars: [0, 1, 254, 255] as [UInt8]), NumpyFixtures.uint8_2x2),
            (Tensor(shape: [3], scalars: [true, false, true]), NumpyFixtures.bool_3),
        ]
        for (tensor, expected) in cases {
            #expect([UInt8](try tensor.npyData()) == expected, "\(tensor)")
        }
    }

    @Test func roundTripsEveryDType() throws {
        let shapes: [Shape] = [[], [0], [3, 0, 2], [5], [2, 3, 4]]
        for dtype in DType.allCases {
            for shape in shapes {
                let tensor = try Tensor(zeros: shape, dtype: dtype)
                let bytes = tensor.rawPointer.assumingMemoryBound(to: UInt8.self)
                for index in 0..<tensor.byteCount {
                    // Bool bytes must be 0 or 1; other types take any pattern.
                    bytes[index] = dtype == .bool ? UInt8(index % 2) : UInt8(truncatingIfNeeded: index &* 37 &+ 11)
                }
                let back = try Tensor(npyData: tensor.npyData())
                #expect(back.isBitwiseEqual(to: tensor), "\(dtype) \(shape)")
                #expect(Int(bitPattern: back.rawPointer) % 64 == 0)
            }
        }
    }

    @Test func roundTripsThroughAFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("apus-npy-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: url) }
        let tensor = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Float])
        try tensor.writeNPY(to: url)
        #expect(try Tensor(contentsOfNPY: url).isBitwiseEqual(to: tensor))
    }

    @Test func largeRankHeaderUsesVersion2() throws {
        // 30,000 dimensions of 1 (three bytes each) make a header longer than 65,535 bytes.
        let tensor = try Tensor(zeros: Shape([Int](repeating: 1, count: 30_000)), dtype: .uint8)
        let data = try tensor.npyData()
        #expect(data[6] == 2)
        #expect(try Tensor(npyData: data).shape == tensor.shape)
    }
}

@Suite struct NPYMalformedTests {
    /// A version 1.0 file with `dictionary` as its header and `payload` as data.
    func file(_ dictionary: String, payload: [UInt8] = []) -> Data {
        let header = Array(dictionary.utf8) + [0x0a]
        let prefix: [UInt8] =
            [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count & 0xff), UInt8(header.count >> 8)]
        return Data(prefix + header + payload)
    }

    @Test func rejectsTruncatedFiles() {
        let full = NumpyFixtures.float32_2x3
        for length in [0, 5, 9, 50, full.count - 1] {
            expectInvalidNPY(length < 10 ? "shorter than" : length < 128 ? "past the end" : "needs 24 data bytes") {
                _ = try Tensor(npyData: Data(full.prefix(length)))
            }
        }
    }

    @Test func rejectsBadMagicAndVersion() {
        var bytes = NumpyFixtures.int8_4
        bytes[1] = UInt8(ascii: "X")
        expectInvalidNPY("magic") { _ = try Tensor(npyData: Data(bytes)) }
        bytes = NumpyFixtures.int8_4
        bytes[6] = 4
        expectInvalidNPY("version 4.0") { _ = try Tensor(npyData: Data(bytes)) }
    }

    @Test func rejectsHeaderLongerThanTheLimit() {
        var bytes = Array(NumpyFixtures.float32_3x2_v2.prefix(12))
        bytes[8...11] = [0, 0, 0, 0x40]  // 1 GiB header
        expectInvalidNPY("exceeds the limit") { _ = try Tensor(npyData: Data(bytes)) }
    }

    @Test func rejectsShapeMismatch() {
        expectInvalidNPY("needs 12 data bytes, file has 8") {
            _ = try Tensor(
                npyData: file(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", payload: [0, 0, 0, 0, 0, 0, 0, 0]))
        }
    }

    @Test func rejectsFortranOrderBigEndianAndFloat64() {
        expectInvalidNPY("fortran_order") { _ = try Tensor(npyData: Data(NumpyFixtures.float32_fortran)) }
        expectInvalidNPY("big-endian") { _ = try Tensor(npyData: Data(NumpyFixtures.float32_bigendian)) }
        expectInvalidNPY("float64") { _ = try Tensor(npyData: Data(NumpyFixtures.float64_2)) }
        expectInvalidNPY("unsupported descr") {
            _ = try Tensor(npyData: file("{'descr': '<u2', 'fortran_order': False, 'shape': (), }"))
        }
    }

    @Test func rejectsBadShapes() {
        expectInvalidNPY("negative") {
            _ = try Tensor(npyData: file("{'descr': '|u1', 'fortran_order': False, 'shape': (-1, 4), }"))
        }
        expectInvalidNPY("overflows") {
            _ = try Tensor(
                npyData: file("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }"))
        }
        expectInvalidNPY("64-bit") {
            _ = try Tensor(
                npyData: file("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"))
        }
    }

    @Test func rejectsMalformedDictionaries() {
        expectInvalidNPY("no string 'descr'") {
            _ = try Tensor(npyData: file("{'fortran_order': False, 'shape': (), }"))
        }
        expectInvalidNPY("unexpected keys") {
            _ = try Tensor(npyData: file("{'descr': '|u1', 'fortran_order': False, 'shape': (), 'x': 'y'}"))
        }
        expectInvalidNPY("duplicate key") {
            _ = try Tensor(npyData: file("{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': ()}"))
        }
        expectInvalidNPY("unterminated") { _ = try Tensor(npyData: file("{'descr: ")) }
        expectInvalidNPY("expected '{'") { _ = try Tensor(npyData: file("[1]")) }
    }

    @Test func rejectsInvalidBoolBytes() {
        expectInvalidNPY("byte value 2") {
            _ = try Tensor(npyData: file("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", payload: [1, 2]))
        }
    }
}
