import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

/// Reads models written by real tools: the ONNX project's node test models (Debian package
/// libonnx-testdata) and tiny nets exported by `torch.onnx.export`, checked against what the
/// `onnx` Python package reads from the same files.
@Suite struct ONNXRealModelTests {
    static let testDataFolder = URL(fileURLWithPath: "/usr/share/libonnx-testdata/data/node")

    @Test func readsEveryONNXNodeTestModel() throws {
        let cases = (try? FileManager.default.contentsOfDirectory(atPath: Self.testDataFolder.path)) ?? []
        guard !cases.isEmpty else {
            print("skipped: \(Self.testDataFolder.path) is absent (apt package libonnx-testdata)")
            return
        }
        var parsed = 0
        var rejected: [String: Int] = [:]
        var tensorsRead = 0
        var tensorsRejected = 0
        for name in cases.sorted() {
            let folder = Self.testDataFolder.appendingPathComponent(name)
            do {
                let graph = try ONNXReader.read(contentsOf: folder.appendingPathComponent("model.onnx"))
                #expect(!graph.nodes.isEmpty, "\(name)")
                parsed += 1
            } catch {
                // Any typed error is acceptable (unsupported types and attribute kinds exist).
                let key = Mirror(reflecting: error.root).children.first?.label ?? "\(error.root)"
                rejected[key, default: 0] += 1
            }
            let dataFolder = folder.appendingPathComponent("test_data_set_0")
            for file in (try? FileManager.default.contentsOfDirectory(atPath: dataFolder.path)) ?? [] {
                guard file.hasSuffix(".pb"),
                    let data = FileManager.default.contents(atPath: dataFolder.appendingPathComponent(file).path)
                else {
                    continue
                }
                do {
                    _ = try ONNXReader.readNamedTensor(data: data)
                    tensorsRead += 1
                } catch {
                    tensorsRejected += 1
                }
            }
        }
        print("ONNX node test models: \(parsed) parsed, \(cases.count - parsed) rejected with typed errors \(rejected)")
        print("ONNX node test tensors: \(tensorsRead) read, \(tensorsRejected) rejected with typed errors")
        // Most of the suite uses plain tensors of supported types; a collapse here means a bug.
        #expect(parsed > cases.count * 3 / 4)
        #expect(tensorsRead > 1000)
    }

    @Test func readsNodeTestTensorsLikeNumpy() throws {
        // test_add: inputs x, y [3, 4, 5] float; output = x + y. Checking the sum relation shows
        // the float payloads were decoded in order (independent of any reference value file).
        let folder = Self.testDataFolder.appendingPathComponent("test_add/test_data_set_0")
        guard let x = FileManager.default.contents(atPath: folder.appendingPathComponent("input_0.pb").path),
            let y = FileManager.default.contents(atPath: folder.appendingPathComponent("input_1.pb").path),
            let z = FileManager.default.contents(atPath: folder.appendingPathComponent("output_0.pb").path)
        else {
            print("skipped: test_add data absent")
            return
        }
        let a = try ONNXReader.readNamedTensor(data: x)
        let b = try ONNXReader.readTensor(data: y)
        let c = try ONNXReader.readTensor(data: z)
        #expect(a.name == "x")
        #expect(a.tensor.shape == [3, 4, 5])
        let sums = zip(try a.tensor.scalars(as: Float.self), try b.scalars(as: Float.self)).map { $0 + $1 }
        #expect(sums == (try c.scalars(as: Float.self)))
        let graph = try ONNXReader.read(contentsOf: Self.testDataFolder.appendingPathComponent("test_add/model.onnx"))
        #expect(graph.nodes.map(\.opType) == ["Add"])
        #expect(graph.inputs.map(\.name) == ["x", "y"])
        #expect(graph.inputs[0].dimensions == [.fixed(3), .fixed(4), .fixed(5)])
    }

    // MARK: PyTorch exports

    static var python: String? {
        let candidates = [
            ProcessInfo.processInfo.environment["APUS_PYTHON"], "/root/.cache/apus/venv-91b1a31eeef4/bin/python",
        ]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var exportScript: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("scripts/fixtures/onnx_reader/export_tiny_convnet.py")
    }

    /// Runs the export script and returns the JSON it prints.
    func export(to folder: URL, mode: String) throws -> [String: Any]? {
        guard let python = Self.python else {
            print("skipped: no Python with torch (set APUS_PYTHON)")
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [Self.exportScript.path, folder.path, mode]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "export script failed")
        let lastLine = try #require(String(decoding: data, as: UTF8.self).split(separator: "\n").last)
        return try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any]
    }

    @Test(arguments: ["external", "inline"])
    func readsTorchExportLikeTheONNXPackage(mode: String) throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        guard let reference = try export(to: folder, mode: mode) else { return }
        let graph = try ONNXReader.read(contentsOf: folder.appendingPathComponent("model.onnx"))

        #expect(graph.nodes.map(\.opType) == reference["nodes"] as? [String])
        #expect(Set(graph.nodes.map(\.name)).count == graph.nodes.count)
        let opsets = try #require(reference["opsets"] as? [String: Int])
        #expect(graph.opsetImports == opsets)

        let inputs = try #require(reference["inputs"] as? [[String: Any]])
        #expect(graph.inputs.map(\.name) == inputs.map { $0["name"] as? String ?? "" })
        for (info, expected) in zip(
            graph.inputs + graph.outputs, inputs + (reference["outputs"] as? [[String: Any]] ?? []))
        {
            let dims = (expected["dims"] as? [Any]) ?? []
            let mapped: [ApusGraph.Dimension] = dims.map {
                ($0 as? Int).map(ApusGraph.Dimension.fixed) ?? .symbolic(($0 as? String) ?? "")
            }
            #expect(info.dimensions == mapped, "\(info.name)")
            #expect(info.dtype == .float32)
        }

        let initializers = try #require(reference["initializers"] as? [String: [String: Any]])
        #expect(Set(graph.initializers.keys) == Set(initializers.keys))
        var externalCount = 0
        for (name, expected) in initializers {
            let tensor = try #require(graph.initializers[name], "\(name)")
            #expect(tensor.shape.dimensions == expected["dims"] as? [Int], "\(name)")
            if expected["external"] as? Bool == true { externalCount += 1 }
            let first = (expected["first"] as? [Double]) ?? []
            let sum = try #require(expected["sum"] as? Double)
            let values: [Double]
            switch tensor.dtype {
            case .float32: values = try tensor.scalars(as: Float.self).map(Double.init)
            case .int64: values = try tensor.scalars(as: Int64.self).map(Double.init)
            default:
                Issue.record("unexpected dtype \(tensor.dtype) for \(name)")
                continue
            }
            // JSON carries the values as doubles; compare at the tensors' own precision.
            #expect(values.prefix(first.count).map { Float($0) } == first.map { Float($0) }, "\(name)")
            #expect(abs(values.reduce(0, +) - sum) <= 1e-9 * max(1, abs(sum)) + 1e-6, "\(name)")
        }
        if mode == "external" {
            #expect(externalCount > 0, "the export wrote no external data; the test lost its point")
        }
    }
}
