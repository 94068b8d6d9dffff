import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// Hand-built `.apus` files for the reader tests: the JSON is written out literally here, so the
/// reader is checked against the format document, not against the writer.
enum ArtifactFixture {
    /// A small valid header: y = x * w + b with two float32 initializers at offsets 0 and 64.
    static let baseJSON = """
        {"format": {"name": "apus", "version": [1, 0]},
         "graph": {"name": "g", "opset_imports": {"": 18},
           "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 2]}],
           "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 2]}],
           "initializers": ["w", "b"],
           "nodes": [{"name": "mul", "op": "Mul", "inputs": ["x", "w"], "outputs": ["t"]},
                     {"name": "add", "op": "Add", "inputs": ["t", "b"], "outputs": ["y"]}]},
         "tensors": {"w": {"dtype": "float32", "shape": [2], "offset": 0, "length": 8},
                     "b": {"dtype": "float32", "shape": [2], "offset": 64, "length": 8}},
         "data_length": 128,
         "labels": ["left", "right"],
         "output_kind": "logits",
         "preprocess": {"steps": [{"op": "to_tensor"}]},
         "metadata": {"producer": "hand-written"},
         "integrity": {"algorithm": "sha256", "data_sha256": "SHA"}}
        """

    /// The data section of the base file: w = [1.5, -2] at 0, b = [0.25, 4] at 64.
    static var baseData: [UInt8] {
        var data = [UInt8](repeating: 0, count: 128)
        // IEEE-754 little-endian spellings, written out by hand.
        data.replaceSubrange(0..<8, with: [0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x00, 0xC0])  // 1.5, -2
        data.replaceSubrange(64..<72, with: [0x00, 0x00, 0x80, 0x3E, 0x00, 0x00, 0x80, 0x40])  // 0.25, 4
        return data
    }

    /// Preamble + JSON + zero padding to 64 + data. `SHA` in the JSON becomes the digest of `data`.
    static func file(
        json: String = baseJSON, data: [UInt8] = baseData, magic: [UInt8] = Array("APUS".utf8), major: UInt32 = 1,
        headerLength: UInt64? = nil
    ) -> Data {
        let digest = SHA256.hexString(SHA256.hash(data))
        let jsonBytes = Array(json.replacingOccurrences(of: "\"SHA\"", with: "\"\(digest)\"").utf8)
        var bytes = magic
        withUnsafeBytes(of: major.littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: (headerLength ?? UInt64(jsonBytes.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: jsonBytes)
        while bytes.count % 64 != 0 { bytes.append(0) }
        bytes.append(contentsOf: data)
        return Data(bytes)
    }

    /// The base JSON with one substring replaced (which must occur).
    static func json(replacing target: String, with replacement: String) -> String {
        precondition(baseJSON.contains(target), "fixture does not contain \(target)")
        return baseJSON.replacingOccurrences(of: target, with: replacement)
    }
}

/// Expects `read(data:)` to throw an error that `matches` accepts.
func expectArtifactError(
    _ data: Data, options: ArtifactReader.Options = .init(), sourceLocation: SourceLocation = #_sourceLocation,
    _ matches: (ArtifactError) -> Bool
) {
    do {
        _ = try ArtifactReader.read(data: data, options: options)
        Issue.record("expected an error, the file was accepted", sourceLocation: sourceLocation)
    } catch {
        #expect(matches(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
    }
}
