import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// A minimal protobuf encoder for building ONNX messages by hand in tests (independent of the
/// reader: it only knows the wire format, and field numbers are written out from onnx.proto).
struct PB {
    var bytes: [UInt8] = []

    init() {}
    init(_ build: (inout PB) -> Void) { build(&self) }

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
    mutating func tag(_ field: Int, _ wireType: Int) { varint(UInt64(field << 3 | wireType)) }
    mutating func int(_ field: Int, _ value: Int64) {
        tag(field, 0)
        varint(UInt64(bitPattern: value))
    }
    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        tag(field, 2)
        varint(UInt64(value.count))
        bytes += value
    }
    mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }
    mutating func message(_ field: Int, _ value: PB) { bytes(field, value.bytes) }
    mutating func fixed32(_ field: Int, _ value: UInt32) {
        tag(field, 5)
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((value >> UInt32(shift)) & 0xff)) }
    }
    mutating func float(_ field: Int, _ value: Float) { fixed32(field, value.bitPattern) }
    /// A packed repeated varint field.
    mutating func packed(_ field: Int, _ values: [Int64]) {
        var inner = PB()
        for value in values { inner.varint(UInt64(bitPattern: value)) }
        bytes(field, inner.bytes)
    }
    mutating func packedFloats(_ field: Int, _ values: [Float]) {
        var raw: [UInt8] = []
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { raw += $0 } }
        bytes(field, raw)
    }

    var data: Data { Data(bytes) }
}

/// ONNX message builders (field numbers from onnx/onnx.proto).
enum ONNXProto {
    static func floatBytes(_ values: [Float]) -> [UInt8] {
        var raw: [UInt8] = []
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { raw += $0 } }
        return raw
    }

    /// TensorProto with raw_data.
    static func tensor(_ name: String, dims: [Int64], dataType: Int64 = 1, raw: [UInt8]) -> PB {
        PB {
            $0.packed(1, dims)
            $0.int(2, dataType)
            $0.string(8, name)
            $0.bytes(9, raw)
        }
    }

    /// TensorProto whose data lives in an external file.
    static func externalTensor(
        _ name: String, dims: [Int64], entries: [(String, String)], dataType: Int64 = 1
    ) -> PB {
        PB {
            $0.packed(1, dims)
            $0.int(2, dataType)
            $0.string(8, name)
            for (key, value) in entries {
                $0.message(
                    13,
                    PB { entry in
                        entry.string(1, key); entry.string(2, value)
                    })
            }
            $0.int(14, 1)
        }
    }

    /// ValueInfoProto of a float tensor; a dim is an Int (dim_value), a String (dim_param) or nil (neither).
    static func valueInfo(_ name: String, elemType: Int64 = 1, dims: [Any?]?) -> PB {
        PB {
            $0.string(1, name)
            var tensorType = PB()
            tensorType.int(1, elemType)
            if let dims {
                var shape = PB()
                for dim in dims {
                    var dimension = PB()
                    if let value = dim as? Int { dimension.int(1, Int64(value)) }
                    if let symbol = dim as? String { dimension.string(2, symbol) }
                    shape.message(1, dimension)
                }
                tensorType.message(2, shape)
            }
            $0.message(2, PB { type in type.message(1, tensorType) })
        }
    }

    static func node(_ opType: String, name: String = "", inputs: [String], outputs: [String], attributes: [PB] = [])
        -> PB
    {
        PB {
            for input in inputs { $0.string(1, input) }
            for output in outputs { $0.string(2, output) }
            if !name.isEmpty { $0.string(3, name) }
            $0.string(4, opType)
            for attribute in attributes { $0.message(5, attribute) }
        }
    }

    /// A model around `graph` with default opset 17.
    static func model(_ graph: PB, opsets: [(String, Int64)] = [("", 17)]) -> PB {
        PB {
            $0.int(1, 8)
            $0.string(2, "apus-tests")
            $0.message(7, graph)
            for (domain, version) in opsets {
                $0.message(
                    8,
                    PB { opset in
                        opset.string(1, domain); opset.int(2, version)
                    })
            }
        }
    }

    /// A one-node graph `y = Identity(w)` whose only initializer is `tensor` (named "w").
    static func modelWithInitializer(_ tensor: PB) -> PB {
        model(
            PB {
                $0.message(1, node("Identity", inputs: ["w"], outputs: ["y"]))
                $0.string(2, "g")
                $0.message(5, tensor)
                $0.message(12, valueInfo("y", dims: nil))
            })
    }
}

/// Expects `body` to throw an ``ONNXError`` whose ``ONNXError/root`` satisfies `matches`.
func expectONNXError(
    _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void,
    matches: (ONNXError) -> Bool
) {
    do {
        try body()
        Issue.record("expected \(what), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as ONNXError {
        #expect(matches(error.root), "expected \(what), got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected ONNXError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
}

/// A fresh temporary folder, removed by the caller.
func makeTemporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("apus-onnx-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
