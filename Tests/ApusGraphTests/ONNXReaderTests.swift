import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

@Suite struct ONNXReaderMappingTests {
    @Test func mapsAHandBuiltGraph() throws {
        let weights: [Float] = [1, -2, 3.5, 0.25]
        let body = PB {
            $0.message(1, ONNXProto.node("Relu", inputs: ["a"], outputs: ["b"]))
            $0.message(12, ONNXProto.valueInfo("b", dims: nil))
        }
        let attributes: [PB] = [
            PB {
                $0.string(1, "ints"); $0.packed(8, [1, -1, 3]); $0.int(20, 7)
            },
            PB {
                $0.string(1, "floats"); $0.float(7, 0.5); $0.float(7, -2); $0.int(20, 6)
            },  // unpacked
            PB {
                $0.string(1, "alpha"); $0.float(2, 0.125); $0.int(20, 1)
            },
            PB {
                $0.string(1, "axis"); $0.int(3, -1); $0.int(20, 2)
            },
            PB {
                $0.string(1, "mode"); $0.string(4, "constant"); $0.int(20, 3)
            },
            PB {
                $0.string(1, "strs"); $0.string(9, "a"); $0.string(9, "bc"); $0.int(20, 8)
            },
            PB {
                $0.string(1, "value");
                $0.message(5, ONNXProto.tensor("", dims: [2], raw: ONNXProto.floatBytes([7, 8]))); $0.int(20, 4)
            },
            PB {
                $0.string(1, "body"); $0.message(6, body); $0.int(20, 5)
            },
            PB {
                $0.string(1, "untyped"); $0.int(3, 42)
            },  // IR v1 style: no type field
        ]
        let graph = PB {
            $0.message(1, ONNXProto.node("Conv", inputs: ["x", "w", ""], outputs: ["c"], attributes: attributes))
            $0.message(1, ONNXProto.node("Relu", name: "Conv_2", inputs: ["c"], outputs: ["r"]))
            $0.message(1, ONNXProto.node("Relu", inputs: ["r"], outputs: ["s"]))  // index 2: must not reuse "Conv_2"
            $0.message(
                1,
                PB {
                    $0.string(1, "s")
                    $0.string(2, "y")
                    $0.string(4, "Custom")
                    $0.string(7, "ai.onnx")
                })
            $0.string(2, "main")
            $0.message(5, ONNXProto.tensor("w", dims: [1, 1, 2, 2], raw: ONNXProto.floatBytes(weights)))
            $0.message(11, ONNXProto.valueInfo("x", dims: ["batch", 1, nil, 4]))
            $0.message(11, ONNXProto.valueInfo("w", dims: [1, 1, 2, 2]))  // has an initializer: not an input
            $0.message(12, ONNXProto.valueInfo("y", elemType: 7, dims: [nil]))
        }
        let model = ONNXProto.model(graph, opsets: [("ai.onnx", 13), ("com.example", 2)])
        let result = try ONNXReader.read(data: model.data, baseDirectory: nil)

        #expect(result.name == "main")
        #expect(result.opsetImports == ["": 13, "com.example": 2])
        #expect(
            result.inputs == [
                ValueInfo(
                    name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(1), .symbolic("?0"), .fixed(4)])
            ])
        #expect(result.outputs == [ValueInfo(name: "y", dtype: .int64, dimensions: [.symbolic("?1")])])
        #expect(result.nodes.map(\.opType) == ["Conv", "Relu", "Relu", "Custom"])
        #expect(result.nodes.map(\.name) == ["Conv_0", "Conv_2", "Relu_2", "Custom_3"])
        #expect(result.nodes[3].domain == "")
        #expect(result.nodes[0].inputs == ["x", "w", ""])
        #expect(try result.initializers["w"]?.scalars(as: Float.self) == weights)
        #expect(result.initializers["w"]?.shape == [1, 1, 2, 2])

        let conv = result.nodes[0]
        #expect(try conv.ints("ints") == [1, -1, 3])
        #expect(try conv.floats("floats") == [0.5, -2])
        #expect(try conv.float("alpha") == 0.125)
        #expect(try conv.int("axis") == -1)
        #expect(try conv.string("mode") == "constant")
        #expect(try conv.int("untyped") == 42)
        guard case .strings(let strings) = conv.attributes["strs"] else { Issue.record("strs"); return }
        #expect(strings == ["a", "bc"])
        #expect(try conv.tensor("value")?.scalars(as: Float.self) == [7, 8])
        guard case .graph(let subgraph) = conv.attributes["body"] else { Issue.record("body"); return }
        #expect(subgraph.nodes.map(\.name) == ["Relu_0"])
        #expect(subgraph.opsetImports == ["": 13, "com.example": 2])
    }

    @Test func decodesEveryTensorDataEncoding() throws {
        func read(_ tensor: PB) throws -> Tensor { try ONNXReader.readTensor(data: tensor.data) }

        // float_data packed and unpacked (protobuf parsers must accept both).
        let packed = try read(
            PB {
                $0.packed(1, [3]); $0.int(2, 1); $0.packedFloats(4, [1, 2.5, -3])
            })
        #expect(try packed.scalars(as: Float.self) == [1, 2.5, -3])
        let unpacked = try read(
            PB {
                $0.int(1, 2); $0.int(2, 1); $0.float(4, 4); $0.float(4, -0.5)
            })
        #expect(unpacked.shape == [2])
        #expect(try unpacked.scalars(as: Float.self) == [4, -0.5])
        // int64_data, packed and unpacked mixed.
        let int64 = try read(
            PB {
                $0.packed(1, [3]); $0.int(2, 7); $0.packed(7, [-1, Int64.max]); $0.int(7, 5)
            })
        #expect(try int64.scalars(as: Int64.self) == [-1, Int64.max, 5])
        // int32_data carries INT32, INT8, UINT8, BOOL and FLOAT16 bit patterns.
        #expect(
            try read(
                PB {
                    $0.packed(1, [2]); $0.int(2, 6); $0.packed(5, [-7, 1 << 30])
                }
            ).scalars(as: Int32.self) == [-7, 1 << 30])
        #expect(
            try read(
                PB {
                    $0.packed(1, [2]); $0.int(2, 3); $0.packed(5, [-128, 127])
                }
            ).scalars(as: Int8.self) == [-128, 127])
        #expect(
            try read(
                PB {
                    $0.packed(1, [2]); $0.int(2, 2); $0.packed(5, [0, 255])
                }
            ).scalars(as: UInt8.self) == [0, 255])
        #expect(
            try read(
                PB {
                    $0.packed(1, [2]); $0.int(2, 9); $0.packed(5, [1, 0])
                }
            ).scalars(as: Bool.self) == [true, false])
        let half = try read(
            PB {
                $0.packed(1, [2]); $0.int(2, 10); $0.packed(5, [0x3C00, 0xC100])
            })
        #expect(half.dtype == .float16)
        #expect(
            Array(UnsafeBufferPointer(start: half.rawPointer.assumingMemoryBound(to: UInt16.self), count: 2)) == [
                0x3C00, 0xC100,
            ])
        // raw_data for a scalar and an empty tensor without any data.
        let scalar = try read(
            PB {
                $0.int(2, 7); $0.bytes(9, [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
            })
        #expect(scalar.shape.rank == 0)
        #expect(try scalar.scalars(as: Int64.self) == [-2])
        let empty = try read(
            PB {
                $0.packed(1, [0, 3]); $0.int(2, 1)
            })
        #expect(empty.shape == [0, 3])
        // Named tensors and 64-byte alignment of the copy.
        let named = try ONNXReader.readNamedTensor(
            data: ONNXProto.tensor("t", dims: [1], raw: ONNXProto.floatBytes([9])).data)
        #expect(named.name == "t")
        #expect(Int(bitPattern: named.tensor.rawPointer) % 64 == 0)
    }

    @Test func mapsInitializerDTypes() throws {
        let cases: [(Int64, [UInt8], DType)] = [(2, [1, 2], .uint8), (3, [0xff, 1], .int8), (9, [1, 0], .bool)]
        for (code, raw, dtype) in cases {
            let tensor = try ONNXReader.readTensor(
                data: ONNXProto.tensor("t", dims: [2], dataType: code, raw: raw).data)
            #expect(tensor.dtype == dtype)
        }
    }
}

@Suite struct ONNXReaderHostileInputTests {
    static let validModel = ONNXProto.modelWithInitializer(
        ONNXProto.tensor("w", dims: [2, 2], raw: ONNXProto.floatBytes([1, 2, 3, 4])))

    @Test func validBaselineParses() throws {
        let graph = try ONNXReader.read(data: Self.validModel.data, baseDirectory: nil)
        #expect(graph.initializers["w"]?.shape == [2, 2])
    }

    @Test func truncationAlwaysThrowsATypedError() {
        let bytes = Self.validModel.bytes
        // Cut inside every structure: tag, length, nested message, raw data, the very end.
        for length in [1, 2, 3, 7, 12, 20, bytes.count / 2, bytes.count - 5, bytes.count - 1] {
            do {
                _ = try ONNXReader.read(data: Data(bytes.prefix(length)), baseDirectory: nil)
                Issue.record("prefix of \(length) bytes parsed")
            } catch {
                // Some cuts land between fields of the model: then the graph is the missing part.
                switch error.root {
                case .truncated, .malformedVarint, .missingGraph: break
                default: Issue.record("prefix of \(length) bytes: unexpected \(error)")
                }
            }
        }
    }

    @Test func rejectsNonONNXBytes() {
        expectONNXError("invalid tag or missing graph") {
            _ = try ONNXReader.read(data: Data("hello, this is not a model\n".utf8), baseDirectory: nil)
        } matches: {
            if case .invalidTag = $0 { return true }
            if case .missingGraph = $0 { return true }
            return false
        }
        expectONNXError("invalid tag") {
            _ = try ONNXReader.read(data: Data([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]), baseDirectory: nil)  // .npy magic
        } matches: {
            if case .invalidTag = $0 { return true }
            if case .malformedVarint = $0 { return true }
            return false
        }
        expectONNXError("missing graph") {
            _ = try ONNXReader.read(data: Data(), baseDirectory: nil)
        } matches: {
            $0 == .missingGraph
        }
    }

    @Test func rejectsVarintOverflow() {
        // Eleven continuation bytes, and a ten-byte varint whose last byte sets bits above 64.
        let tooLong = Data([0x08] + [UInt8](repeating: 0xff, count: 10) + [0x01])
        expectONNXError("malformedVarint") {
            _ = try ONNXReader.read(data: tooLong, baseDirectory: nil)
        } matches: {
            $0 == .malformedVarint(offset: 1, message: "ModelProto")
        }
        let overflow = Data([0x08] + [UInt8](repeating: 0xff, count: 9) + [0x02])
        expectONNXError("malformedVarint") {
            _ = try ONNXReader.read(data: overflow, baseDirectory: nil)
        } matches: {
            $0 == .malformedVarint(offset: 1, message: "ModelProto")
        }
    }

    @Test func rejectsLengthBeyondEnd() {
        var model = PB()
        model.tag(7, 2)
        model.varint(1_000_000)
        model.bytes += [1, 2, 3]
        expectONNXError("truncated") {
            _ = try ONNXReader.read(data: model.data, baseDirectory: nil)
        } matches: {
            $0 == .truncated(offset: 0, message: "ModelProto", field: 7, needed: 1_000_000, available: 3)
        }
        // A length that does not fit Int64 must not wrap around.
        var huge = PB()
        huge.tag(7, 2)
        huge.varint(UInt64.max)
        expectONNXError("truncated") {
            _ = try ONNXReader.read(data: huge.data, baseDirectory: nil)
        } matches: {
            if case .truncated = $0 { return true }
            return false
        }
    }

    @Test func rejectsGroupsAndInvalidWireTypes() {
        for wireType in [3, 4, 6, 7] {
            var model = PB()
            model.tag(7, wireType)
            expectONNXError("invalid tag") {
                _ = try ONNXReader.read(data: model.data, baseDirectory: nil)
            } matches: {
                $0 == .invalidTag(offset: 0, message: "ModelProto", field: 7, wireType: wireType)
            }
        }
        expectONNXError("unexpected wire type") {
            _ = try ONNXReader.read(data: PB { $0.int(7, 5) }.data, baseDirectory: nil)
        } matches: {
            $0 == .unexpectedWireType(offset: 0, message: "ModelProto", field: 7, expected: 2, actual: 0)
        }
    }

    @Test func rejectsNestingBombs() {
        // If-nodes nested 40 deep: every level is Graph > Node > Attribute > Graph.
        var graph = PB { $0.message(1, ONNXProto.node("Relu", inputs: ["a"], outputs: ["b"])) }
        for _ in 0..<40 {
            let attribute = PB {
                $0.string(1, "then_branch"); $0.message(6, graph); $0.int(20, 5)
            }
            graph = PB { $0.message(1, ONNXProto.node("If", inputs: ["c"], outputs: ["d"], attributes: [attribute])) }
        }
        let model = ONNXProto.model(graph)
        expectONNXError("subgraph too deep") {
            _ = try ONNXReader.read(data: model.data, baseDirectory: nil)
        } matches: {
            $0 == .subgraphTooDeep(limit: 32)
        }
        var options = ONNXReader.Options()
        options.maxSubgraphDepth = 64
        expectONNXError("nesting too deep") {
            _ = try ONNXReader.read(data: model.data, baseDirectory: nil, options: options)
        } matches: {
            if case .nestingTooDeep(_, 100) = $0 { return true }
            return false
        }
        options.maxNestingDepth = 1000
        #expect(throws: Never.self) { _ = try ONNXReader.read(data: model.data, baseDirectory: nil, options: options) }

        // 60,000 levels of Graph > Node > Attribute nesting with subgraph limits lifted: the
        // message depth limit must stop it long before the stack runs out.
        var headers: [[UInt8]] = []
        var length = 0
        for level in 0..<60_001 {
            let field = level == 60_000 ? 7 : [6, 5, 1][level % 3]
            var header = PB()
            header.tag(field, 2)
            header.varint(UInt64(length))
            headers.append(header.bytes)
            length += header.bytes.count
        }
        let bomb = Data(headers.reversed().joined())
        options = ONNXReader.Options()
        options.maxSubgraphDepth = .max
        expectONNXError("nesting too deep") {
            _ = try ONNXReader.read(data: bomb, baseDirectory: nil, options: options)
        } matches: {
            if case .nestingTooDeep(_, 100) = $0 { return true }
            return false
        }
    }

    @Test func rejectsBadDimensions() {
        expectONNXError("negative dims") {
            _ = try ONNXReader.readTensor(data: ONNXProto.tensor("t", dims: [2, -3], raw: []).data)
        } matches: {
            $0 == .invalidDimensions(tensor: "t", dims: [2, -3], reason: "negative dimension")
        }
        expectONNXError("dims product overflow") {
            _ = try ONNXReader.readTensor(data: ONNXProto.tensor("t", dims: [1 << 32, 1 << 32], raw: []).data)
        } matches: {
            $0 == .invalidDimensions(tensor: "t", dims: [1 << 32, 1 << 32], reason: "element count overflows")
        }
        expectONNXError("byte count overflow") {
            _ = try ONNXReader.readTensor(data: ONNXProto.tensor("t", dims: [1 << 62], raw: []).data)
        } matches: {
            $0 == .invalidDimensions(tensor: "t", dims: [1 << 62], reason: "byte count overflows")
        }
        expectONNXError("too large") {
            _ = try ONNXReader.readTensor(data: ONNXProto.tensor("t", dims: [1 << 40], raw: []).data)
        } matches: {
            $0 == .tensorTooLarge(tensor: "t", bytes: 1 << 42, limit: 1 << 36)
        }
        expectONNXError("negative dim_value") {
            let graph = PB { $0.message(11, ONNXProto.valueInfo("x", dims: [-1])) }
            _ = try ONNXReader.read(data: ONNXProto.model(graph).data, baseDirectory: nil)
        } matches: {
            if case .valueOutOfRange(_, "TensorShapeProto.Dimension", 1, -1) = $0 { return true }
            return false
        }
    }

    @Test func rejectsDataLengthMismatches() {
        expectONNXError("raw_data length") {
            _ = try ONNXReader.readTensor(data: ONNXProto.tensor("t", dims: [3], raw: [0, 0, 0, 0]).data)
        } matches: {
            $0 == .dataLengthMismatch(tensor: "t", field: "raw_data bytes", expected: 12, actual: 4)
        }
        expectONNXError("float_data count") {
            _ = try ONNXReader.readTensor(
                data: PB {
                    $0.packed(1, [3]); $0.int(2, 1); $0.packedFloats(4, [1])
                }.data)
        } matches: {
            $0 == .dataLengthMismatch(tensor: "", field: "float_data elements", expected: 3, actual: 1)
        }
        expectONNXError("missing data") {
            _ = try ONNXReader.readTensor(
                data: PB {
                    $0.packed(1, [3]); $0.int(2, 1)
                }.data)
        } matches: {
            $0 == .dataLengthMismatch(tensor: "", field: "data elements", expected: 3, actual: 0)
        }
        expectONNXError("packed floats not a multiple of 4") {
            _ = try ONNXReader.readTensor(
                data: PB {
                    $0.int(2, 1); $0.bytes(4, [0, 0, 0])
                }.data)
        } matches: {
            if case .truncated(_, "TensorProto", 4, 4, 3) = $0 { return true }
            return false
        }
        expectONNXError("int8 out of range") {
            _ = try ONNXReader.readTensor(
                data: PB {
                    $0.int(1, 1); $0.int(2, 3); $0.packed(5, [300])
                }.data)
        } matches: {
            if case .invalidTensorData(_, let reason) = $0 { return reason.contains("300") }
            return false
        }
        expectONNXError("bool byte 2") {
            _ = try ONNXReader.readTensor(data: ONNXProto.tensor("b", dims: [2], dataType: 9, raw: [1, 2]).data)
        } matches: {
            $0 == .invalidTensorData(tensor: "b", reason: "bool element 1 has byte value 2")
        }
        expectONNXError("two data sources") {
            _ = try ONNXReader.readTensor(
                data: PB {
                    $0.int(1, 1); $0.int(2, 1); $0.float(4, 1); $0.bytes(9, [0, 0, 0, 0])
                }.data)
        } matches: {
            $0 == .invalidTensorData(tensor: "", reason: "data is given in 2 fields")
        }
    }

    @Test func rejectsUnsupportedDataTypes() {
        for code: Int64 in [0, 11, 8, 16, 99, -5] {
            expectONNXError("unsupported data type \(code)") {
                _ = try ONNXReader.readTensor(
                    data: ONNXProto.tensor("t", dims: [1], dataType: code, raw: [0, 0, 0, 0, 0, 0, 0, 0]).data)
            } matches: {
                $0 == .unsupportedDataType(name: "t", dataType: Int(code))
            }
        }
        // In a model, the error names the initializer.
        let model = ONNXProto.modelWithInitializer(
            ONNXProto.tensor("w", dims: [1], dataType: 11, raw: [UInt8](repeating: 0, count: 8)))
        do {
            _ = try ONNXReader.read(data: model.data, baseDirectory: nil)
            Issue.record("double initializer accepted")
        } catch {
            #expect(error.description.contains("'w'"))
            #expect(error.description.contains("DOUBLE"))
        }
    }

    @Test func rejectsDuplicateProducers() {
        let graph = PB {
            $0.message(1, ONNXProto.node("Relu", inputs: ["x"], outputs: ["y"]))
            $0.message(1, ONNXProto.node("Relu", inputs: ["x"], outputs: ["y"]))
            $0.message(11, ONNXProto.valueInfo("x", dims: [1]))
        }
        expectONNXError("duplicate producer") {
            _ = try ONNXReader.read(data: ONNXProto.model(graph).data, baseDirectory: nil)
        } matches: {
            if case .duplicateName("y", _) = $0 { return true }
            return false
        }
        expectONNXError("conflicting opset") {
            _ = try ONNXReader.read(
                data: ONNXProto.model(graph, opsets: [("", 13), ("ai.onnx", 17)]).data, baseDirectory: nil)
        } matches: {
            $0 == .conflictingOpset(domain: "", versions: [13, 17])
        }
    }

    @Test func enforcesCountAndSizeLimits() {
        var options = ONNXReader.Options()
        options.maxNodes = 1
        let graph = PB {
            $0.message(1, ONNXProto.node("Relu", inputs: ["x"], outputs: ["y"]))
            $0.message(1, ONNXProto.node("Relu", inputs: ["y"], outputs: ["z"]))
        }
        expectONNXError("node limit") {
            _ = try ONNXReader.read(data: ONNXProto.model(graph).data, baseDirectory: nil, options: options)
        } matches: {
            $0 == .limitExceeded(what: "nodes", limit: 1)
        }
        options = ONNXReader.Options()
        options.maxFileBytes = 10
        expectONNXError("file limit") {
            _ = try ONNXReader.read(data: Self.validModel.data, baseDirectory: nil, options: options)
        } matches: {
            if case .fileTooLarge(_, _, 10) = $0 { return true }
            return false
        }
    }
}
