import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// Malformed files: each must end in its specific ``ArtifactError``, never a crash.
@Suite struct ArtifactHostileTests {
    let valid = ArtifactFixture.file()

    func headerLength(_ data: Data) -> Int {
        data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))) }
    }

    @Test func baseFixtureIsValid() throws {
        _ = try ArtifactReader.read(data: valid, options: .init(verifyChecksum: true))
    }

    // MARK: Preamble and truncation

    @Test func truncatedInsideMagic() {
        expectArtifactError(valid.prefix(2)) { if case .tooShort(2, 16) = $0 { true } else { false } }
        expectArtifactError(Data()) { if case .tooShort(0, 16) = $0 { true } else { false } }
    }

    @Test func truncatedInsideHeaderLength() {
        expectArtifactError(valid.prefix(12)) { if case .tooShort(12, 16) = $0 { true } else { false } }
    }

    @Test func truncatedInsideJSON() {
        let cut = 16 + headerLength(valid) / 2
        expectArtifactError(valid.prefix(cut)) {
            if case .headerBeyondFile(_, let available) = $0 { available == cut - 16 } else { false }
        }
    }

    @Test func truncatedInsideData() {
        expectArtifactError(valid.prefix(valid.count - 30)) {
            if case .fileSizeMismatch(let expected, let actual) = $0 {
                expected == valid.count && actual == valid.count - 30
            } else {
                false
            }
        }
        // Cut inside the header padding (before the data section starts).
        let inPadding = 16 + headerLength(valid) + 1
        expectArtifactError(valid.prefix(inPadding)) { if case .fileSizeMismatch = $0 { true } else { false } }
    }

    @Test func badMagic() {
        expectArtifactError(ArtifactFixture.file(magic: Array("APUX".utf8))) {
            if case .badMagic(let bytes) = $0 { bytes == Array("APUX".utf8) } else { false }
        }
    }

    @Test func unknownMajorVersion() {
        expectArtifactError(ArtifactFixture.file(major: 2)) {
            if case .unsupportedVersion(2, 1) = $0 { true } else { false }
        }
        let json = ArtifactFixture.json(replacing: "[1, 0]", with: "[2, 0]")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .versionMismatch(1, 2) = $0 { true } else { false }
        }
    }

    @Test func headerLengthBeyondFile() {
        let length = UInt64(headerLength(valid) + 1000)
        expectArtifactError(ArtifactFixture.file(headerLength: length)) {
            if case .headerBeyondFile(length, _) = $0 { true } else { false }
        }
    }

    @Test func headerLengthOverTheCap() {
        expectArtifactError(ArtifactFixture.file(headerLength: 200_000_000)) {
            if case .headerTooLarge(200_000_000, 100_000_000) = $0 { true } else { false }
        }
        // A configured smaller cap applies to a header that fits in the file.
        expectArtifactError(valid, options: .init(maxHeaderBytes: 100)) {
            if case .headerTooLarge(_, 100) = $0 { true } else { false }
        }
    }

    @Test func hugeHeaderClaim() {
        expectArtifactError(ArtifactFixture.file(headerLength: UInt64.max)) {
            if case .headerTooLarge(UInt64.max, _) = $0 { true } else { false }
        }
    }

    // MARK: UTF-8 and JSON

    @Test func invalidUTF8() {
        var bytes = [UInt8](valid)
        // Overwrite the "g" of the graph name with a lone continuation byte.
        let position = try? #require(
            bytes.indices.first { bytes[$0] == UInt8(ascii: "g") && bytes[$0 - 1] == UInt8(ascii: "\"") })
        guard let position else { return }
        bytes[position] = 0x80
        expectArtifactError(Data(bytes)) { if case .invalidUTF8(position) = $0 { true } else { false } }
        // An overlong encoding of "/" is invalid too.
        let overlong = ArtifactFixture.json(replacing: "\"name\": \"g\"", with: "\"name\": \"\u{FFFD}\"")
        var overlongBytes = [UInt8](ArtifactFixture.file(json: overlong))
        if let start = overlongBytes.firstRange(of: [0xEF, 0xBF, 0xBD])?.lowerBound {
            overlongBytes.replaceSubrange(start..<start + 3, with: [0xC0, 0xAF, 0x20])
            expectArtifactError(Data(overlongBytes)) { if case .invalidUTF8(start) = $0 { true } else { false } }
        }
    }

    @Test func invalidJSON() {
        expectArtifactError(ArtifactFixture.file(json: "{\"format\": }")) {
            if case .invalidJSON(let offset, _) = $0 { offset == 16 + 11 } else { false }
        }
        expectArtifactError(ArtifactFixture.file(json: ArtifactFixture.baseJSON + " x")) {
            if case .invalidJSON = $0 { true } else { false }
        }
        expectArtifactError(ArtifactFixture.file(json: "{\"a\": \"tab\there\"}")) {
            if case .invalidJSON = $0 { true } else { false }
        }
        expectArtifactError(ArtifactFixture.file(json: "{\"a\": \"\\ud800\"}")) {
            if case .invalidJSON = $0 { true } else { false }
        }
        expectArtifactError(ArtifactFixture.file(json: "\u{FEFF}{}")) {
            if case .invalidJSON(16, _) = $0 { true } else { false }
        }
    }

    @Test func duplicateKeysAreRefused() {
        let json = ArtifactFixture.json(
            replacing: "\"data_length\": 128", with: "\"data_length\": 128, \"data_length\": 64")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .invalidJSON(_, let reason) = $0 { reason.contains("duplicate") } else { false }
        }
    }

    @Test func jsonNestedTenThousandDeep() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        expectArtifactError(ArtifactFixture.file(json: deep)) {
            if case .jsonTooDeep(65, 64, let offset) = $0 { offset == 16 + 64 } else { false }
        }
        let deepObjects = String(repeating: "{\"a\":", count: 10_000) + "1" + String(repeating: "}", count: 10_000)
        expectArtifactError(ArtifactFixture.file(json: deepObjects)) {
            if case .jsonTooDeep = $0 { true } else { false }
        }
        // Brackets inside strings do not count.
        let inString = ArtifactFixture.json(
            replacing: "\"hand-written\"", with: "\"" + String(repeating: "[{", count: 5000) + "\"")
        #expect(throws: Never.self) { try ArtifactReader.read(data: ArtifactFixture.file(json: inString)) }
    }

    // MARK: Schema

    @Test func missingGraph() {
        let json = ArtifactFixture.baseJSON.replacingOccurrences(of: "\"graph\":", with: "\"graph_renamed\":")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .missingField("graph") = $0 { true } else { false }
        }
    }

    @Test func missingTensorField() {
        let json = ArtifactFixture.json(replacing: "\"offset\": 64, ", with: "")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .missingField("tensors[\"b\"].offset") = $0 { true } else { false }
        }
    }

    @Test func nonIntegerOffset() {
        let json = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": 1.5")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .notAnInteger("tensors[\"b\"].offset", "1.5") = $0 { true } else { false }
        }
        let huge = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": 1e400")
        expectArtifactError(ArtifactFixture.file(json: huge)) { if case .notAnInteger = $0 { true } else { false } }
        let big = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": 99999999999999999999")
        expectArtifactError(ArtifactFixture.file(json: big)) { if case .notAnInteger = $0 { true } else { false } }
    }

    @Test func offsetAsString() {
        let json = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": \"64\"")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .wrongType("tensors[\"b\"].offset", _, "string") = $0 { true } else { false }
        }
    }

    @Test func wrongTypes() {
        let json = ArtifactFixture.json(
            replacing: "\"labels\": [\"left\", \"right\"]", with: "\"labels\": [\"left\", 3]")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .wrongType("labels[1]", _, "number") = $0 { true } else { false }
        }
        expectArtifactError(ArtifactFixture.file(json: "[1, 2]")) {
            if case .wrongType("header", _, "array") = $0 { true } else { false }
        }
    }

    @Test func badIntegrityField() {
        let json = ArtifactFixture.json(replacing: "\"sha256\", \"data_sha256\"", with: "\"md5\", \"data_sha256\"")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .unsupportedIntegrityAlgorithm("md5") = $0 { true } else { false }
        }
        let short = ArtifactFixture.json(replacing: "\"SHA\"", with: "\"abc\"")
        expectArtifactError(ArtifactFixture.file(json: short)) {
            if case .invalidValue("integrity.data_sha256", _) = $0 { true } else { false }
        }
    }

    // MARK: Tensors

    @Test func unknownDType() {
        let json = ArtifactFixture.json(
            replacing: "\"b\": {\"dtype\": \"float32\"", with: "\"b\": {\"dtype\": \"float64\"")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .unknownDType("tensors[\"b\"].dtype", "float64") = $0 { true } else { false }
        }
    }

    @Test func negativeDimension() {
        let json = ArtifactFixture.json(
            replacing: "\"shape\": [2], \"offset\": 64", with: "\"shape\": [-2], \"offset\": 64")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .negativeDimension("tensors[\"b\"].shape", [-2]) = $0 { true } else { false }
        }
    }

    @Test func shapeProductOverflowsInt() {
        let json = ArtifactFixture.json(
            replacing: "\"shape\": [2], \"offset\": 64", with: "\"shape\": [4611686018427387904, 4], \"offset\": 64")
        expectArtifactError(ArtifactFixture.file(json: json)) { if case .shapeOverflow = $0 { true } else { false } }
        // Element count fits, byte count does not.
        let bytes = ArtifactFixture.json(
            replacing: "\"shape\": [2], \"offset\": 64", with: "\"shape\": [4611686018427387904], \"offset\": 64")
        expectArtifactError(ArtifactFixture.file(json: bytes)) { if case .shapeOverflow = $0 { true } else { false } }
    }

    @Test func lengthNotShapeTimesDTypeSize() {
        let json = ArtifactFixture.json(
            replacing: "\"offset\": 64, \"length\": 8", with: "\"offset\": 64, \"length\": 12")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .lengthMismatch("tensors[\"b\"].length", 8, 12) = $0 { true } else { false }
        }
    }

    @Test func misalignedOffset() {
        let json = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": 8")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .misalignedOffset("tensors[\"b\"].offset", 8, 64) = $0 { true } else { false }
        }
    }

    @Test func offsetOutOfRange() {
        let json = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": 128")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .outOfBounds("tensors[\"b\"].offset", 128, 8, 128) = $0 { true } else { false }
        }
        let negative = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": -64")
        expectArtifactError(ArtifactFixture.file(json: negative)) { if case .outOfBounds = $0 { true } else { false } }
        let nearMax = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": 9223372036854775744")
        expectArtifactError(ArtifactFixture.file(json: nearMax)) { if case .outOfBounds = $0 { true } else { false } }
    }

    @Test func overlappingOffsets() {
        let json = ArtifactFixture.json(replacing: "\"offset\": 64", with: "\"offset\": 0")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .overlap("b", "w") = $0 { true } else { false }
        }
    }

    @Test func oneTerabyteTensorFailsFast() {
        let start = ContinuousClock.now
        let claim = ArtifactFixture.json(
            replacing: "\"shape\": [2], \"offset\": 64, \"length\": 8",
            with: "\"shape\": [1099511627776], \"offset\": 64, \"length\": 4398046511104")
        expectArtifactError(ArtifactFixture.file(json: claim)) { if case .outOfBounds = $0 { true } else { false } }
        // The same tensor with a data_length that admits it: the file is far too short.
        let admitted = claim.replacingOccurrences(of: "\"data_length\": 128", with: "\"data_length\": 4398046511168")
        expectArtifactError(ArtifactFixture.file(json: admitted)) {
            if case .fileSizeMismatch(_, let actual) = $0 { actual < 2048 } else { false }
        }
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test func dataLengthLongerThanTheTensors() {
        let json = ArtifactFixture.json(replacing: "\"data_length\": 128", with: "\"data_length\": 192")
        expectArtifactError(
            ArtifactFixture.file(json: json, data: ArtifactFixture.baseData + [UInt8](repeating: 0, count: 64))
        ) {
            if case .dataLengthMismatch(192, 128) = $0 { true } else { false }
        }
    }

    @Test func trailingBytesAfterTheData() {
        var bytes = valid
        bytes.append(contentsOf: [UInt8](repeating: 0, count: 64))
        expectArtifactError(bytes) {
            if case .trailingBytes(let end, let size) = $0 {
                end == valid.count && size == valid.count + 64
            } else {
                false
            }
        }
        var one = valid
        one.append(0x41)
        expectArtifactError(one) { if case .trailingBytes = $0 { true } else { false } }
    }

    @Test func nonZeroHeaderPadding() {
        var bytes = [UInt8](valid)
        let position = 16 + headerLength(valid)
        guard position % 64 != 0 else { return }
        bytes[position] = 7
        expectArtifactError(Data(bytes)) { if case .nonZeroPadding(position) = $0 { true } else { false } }
    }

    @Test func tensorLimit() {
        expectArtifactError(valid, options: .init(maxTensors: 1)) {
            if case .limitExceeded("tensors", 2, 1) = $0 { true } else { false }
        }
        expectArtifactError(valid, options: .init(maxNodes: 1)) {
            if case .limitExceeded("nodes", 2, 1) = $0 { true } else { false }
        }
    }

    // MARK: Graph

    @Test func cyclicGraph() {
        let json = ArtifactFixture.json(replacing: "\"inputs\": [\"x\", \"w\"]", with: "\"inputs\": [\"y\", \"w\"]")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .graph(.cycle(let nodes)) = $0 { Set(nodes) == ["mul", "add"] } else { false }
        }
    }

    @Test func danglingValueName() {
        let json = ArtifactFixture.json(replacing: "\"inputs\": [\"t\", \"b\"]", with: "\"inputs\": [\"t2\", \"b\"]")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .graph(.undefinedValue("t2", "add")) = $0 { true } else { false }
        }
    }

    @Test func duplicateProducers() {
        let json = ArtifactFixture.json(replacing: "\"outputs\": [\"t\"]", with: "\"outputs\": [\"y\"]")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .graph(.duplicateProducer("y", _)) = $0 { true } else { false }
        }
    }

    @Test func outputNotProduced() {
        let json = ArtifactFixture.json(
            replacing: "\"outputs\": [{\"name\": \"y\"", with: "\"outputs\": [{\"name\": \"z\"")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .graph(.outputNotProduced("z")) = $0 { true } else { false }
        }
    }

    @Test func initializerMissingFromTensors() {
        let json = ArtifactFixture.json(replacing: "[\"w\", \"b\"]", with: "[\"w\", \"b\", \"c\"]")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .unknownTensor("graph.initializers[2]", "c") = $0 { true } else { false }
        }
    }

    @Test func graphAttributeRefused() {
        let json = ArtifactFixture.json(
            replacing: "\"outputs\": [\"t\"]}",
            with: "\"outputs\": [\"t\"], \"attributes\": {\"body\": {\"graph\": {}}}}")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .unsupportedAttribute("mul", "body", "graph") = $0 { true } else { false }
        }
    }

    @Test func attributeTensorMustExist() {
        let json = ArtifactFixture.json(
            replacing: "\"outputs\": [\"t\"]}",
            with: "\"outputs\": [\"t\"], \"attributes\": {\"value\": {\"tensor\": \"nope\"}}}")
        expectArtifactError(ArtifactFixture.file(json: json)) {
            if case .unknownTensor(_, "nope") = $0 { true } else { false }
        }
    }

    @Test func goldenReferences() {
        let unknown = ArtifactFixture.json(
            replacing: "\"labels\"",
            with:
                "\"golden\": [{\"inputs\": {\"x\": \"missing\"}, \"outputs\": {}, \"tolerance\": {\"relative\": 0, \"absolute\": 0}}], \"labels\""
        )
        expectArtifactError(ArtifactFixture.file(json: unknown)) {
            if case .unknownTensor(_, "missing") = $0 { true } else { false }
        }
        let notInput = ArtifactFixture.json(
            replacing: "\"labels\"",
            with:
                "\"golden\": [{\"inputs\": {\"q\": \"w\"}, \"outputs\": {}, \"tolerance\": {\"relative\": 0, \"absolute\": 0}}], \"labels\""
        )
        expectArtifactError(ArtifactFixture.file(json: notInput)) { if case .invalidValue = $0 { true } else { false } }
    }

    // MARK: Integrity

    @Test func checksumMismatchWhenVerifying() throws {
        var bytes = [UInt8](valid)
        bytes[bytes.count - 128] ^= 0x01  // first byte of w
        let tampered = Data(bytes)
        // Not verified by default: the file is structurally fine.
        let artifact = try ArtifactReader.read(data: tampered)
        #expect(throws: ArtifactError.self) { try artifact.verifyChecksum() }
        expectArtifactError(tampered, options: .init(verifyChecksum: true)) {
            if case .checksumMismatch(let expected, let actual) = $0 { expected != actual } else { false }
        }
    }

    // MARK: No input crashes the reader

    @Test func everyPrefixAndManyMutationsFailCleanly() {
        for length in 0..<valid.count {
            #expect(throws: ArtifactError.self) { try ArtifactReader.read(data: valid.prefix(length)) }
        }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let interesting: [UInt8] = [0, 0xFF, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2D, 0x39, 0x80, 0xC3]
        for _ in 0..<2000 {
            var bytes = [UInt8](valid)
            for _ in 0...(next() % 3) {
                let position = Int(next() % UInt64(bytes.count))
                bytes[position] =
                    next() % 2 == 0
                    ? interesting[Int(next() % UInt64(interesting.count))] : UInt8(truncatingIfNeeded: next())
            }
            _ = try? ArtifactReader.read(data: Data(bytes), options: .init(verifyChecksum: true))
        }
    }
}
