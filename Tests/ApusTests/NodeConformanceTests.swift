import ApusGraph
import ApusTensor
import Foundation
import Testing

/// Runs the ONNX backend node tests (Debian's libonnx-testdata, and the onnx wheel's
/// pytorch-converted/pytorch-operator/simple/light sets): every test whose operators Apus
/// implements must match ONNX's reference outputs (rtol 1e-3, atol 1e-7, like onnx's runner).
/// Tests that use an operator, dtype or attribute Apus does not implement are counted, not failed.
@Suite struct NodeConformanceTests {
    enum Outcome: Equatable {
        case passed
        case failed(String)
        case unsupported(String)
    }

    struct Result {
        var name: String
        var suite: String
        var opTypes: [String]
        var outcome: Outcome
    }

    /// Test folders, with the name of the set they come from.
    static func testDirectories() -> [(suite: String, url: URL)] {
        var roots: [(String, URL)] = [("node", URL(filePath: "/usr/share/libonnx-testdata/data/node"))]
        if let python = ProcessInfo.processInfo.environment["APUS_PYTHON"] {
            let venv = URL(filePath: python).deletingLastPathComponent().deletingLastPathComponent()
            if let lib = try? FileManager.default.contentsOfDirectory(atPath: venv.appending(path: "lib").path),
                let pythonDir = lib.first(where: { $0.hasPrefix("python") })
            {
                let data = venv.appending(path: "lib/\(pythonDir)/site-packages/onnx/backend/test/data")
                for set in ["pytorch-converted", "pytorch-operator", "simple", "light"] {
                    roots.append((set, data.appending(path: set)))
                }
            }
        }
        var result: [(String, URL)] = []
        for (suite, root) in roots {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { continue }
            for name in names.sorted() where FileManager.default.fileExists(atPath: root.appending(path: "\(name)/model.onnx").path) {
                result.append((suite, root.appending(path: name)))
            }
        }
        return result
    }

    /// Tests known to fail, with the reason. A test listed here that passes fails the run, so the
    /// list cannot go stale.
    static let knownFailures: [String: String] = [:]

    static func run(directory: URL) -> (opTypes: [String], outcome: Outcome) {
        let graph: Graph
        do {
            graph = try ONNXReader.read(contentsOf: directory.appending(path: "model.onnx"))
        } catch {
            return ([], .unsupported("reader: \(error)"))
        }
        let opTypes = Array(Set(graph.nodes.map(\.opType))).sorted()
        let runner: GraphRunner
        do {
            runner = try GraphRunner(graph: graph, options: .init(plan: .init(threadCount: 2)))
        } catch GraphError.unsupportedOperators(let byType) {
            return (opTypes, .unsupported("operators \(byType.keys.sorted().joined(separator: ","))"))
        } catch GraphError.node(_, _, .unsupported(let reason)) {
            return (opTypes, .unsupported(reason))
        } catch {
            return (opTypes, .failed("load: \(error)"))
        }
        let sets = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasPrefix("test_data_set_") }.sorted()
        if sets.isEmpty { return (opTypes, .unsupported("no test data")) }
        for set in sets {
            let folder = directory.appending(path: set)
            var inputs: [String: Tensor] = [:]
            var expected: [(String, Tensor)] = []
            do {
                for index in 0..<graph.inputs.count {
                    let url = folder.appending(path: "input_\(index).pb")
                    guard let data = try? Data(contentsOf: url) else { break }
                    let (name, tensor) = try ONNXReader.readNamedTensor(data: data)
                    let declared = runner.graph.inputs[index].name
                    inputs[name.isEmpty ? declared : name] = tensor
                }
                for index in 0..<graph.outputs.count {
                    let url = folder.appending(path: "output_\(index).pb")
                    guard let data = try? Data(contentsOf: url) else { break }
                    let (name, tensor) = try ONNXReader.readNamedTensor(data: data)
                    expected.append((name.isEmpty ? graph.outputs[index].name : name, tensor))
                }
            } catch {
                return (opTypes, .unsupported("test data: \(error)"))
            }
            let outputs: [String: Tensor]
            do {
                outputs = try runner.run(inputs)
            } catch GraphError.node(_, _, .unsupported(let reason)) {
                return (opTypes, .unsupported(reason))
            } catch GraphError.node(_, _, .unsupportedDType(let input, let dtype)) {
                return (opTypes, .unsupported("input \(input) dtype \(dtype)"))
            } catch {
                return (opTypes, .failed("\(set): \(error)"))
            }
            for (name, reference) in expected {
                guard let actual = outputs[name] else { return (opTypes, .failed("\(set): output '\(name)' missing")) }
                if let mismatch = compare(actual, reference) { return (opTypes, .failed("\(set) '\(name)': \(mismatch)")) }
            }
        }
        return (opTypes, .passed)
    }

    /// A description of the first disagreement, or `nil` when the tensors agree.
    static func compare(_ actual: Tensor, _ expected: Tensor) -> String? {
        guard actual.dtype == expected.dtype else { return "dtype \(actual.dtype), expected \(expected.dtype)" }
        guard actual.shape == expected.shape else { return "shape \(actual.shape), expected \(expected.shape)" }
        let a = doubles(actual)
        let e = doubles(expected)
        for index in a.indices {
            let (x, y) = (a[index], e[index])
            if x.isNaN && y.isNaN { continue }
            if x == y { continue }
            if actual.dtype.isFloatingPoint, abs(x - y) <= 1e-7 + 1e-3 * abs(y) { continue }
            return "element \(index): \(x), expected \(y)"
        }
        return nil
    }

    static func doubles(_ tensor: Tensor) -> [Double] {
        switch tensor.dtype {
        case .float32: tensor.withUnsafeBufferPointer(as: Float.self) { $0.map(Double.init) }
        case .float16: tensor.withUnsafeBufferPointer(as: Float16.self) { $0.map(Double.init) }
        case .int64: tensor.withUnsafeBufferPointer(as: Int64.self) { $0.map(Double.init) }
        case .int32: tensor.withUnsafeBufferPointer(as: Int32.self) { $0.map(Double.init) }
        case .int8: tensor.withUnsafeBufferPointer(as: Int8.self) { $0.map(Double.init) }
        case .uint8: tensor.withUnsafeBufferPointer(as: UInt8.self) { $0.map(Double.init) }
        case .bool: tensor.withUnsafeBufferPointer(as: Bool.self) { $0.map { $0 ? 1 : 0 } }
        }
    }

    @Test func backendNodeTests() throws {
        let directories = Self.testDirectories()
        if Fixtures.required { #expect(directories.count > 900, "ONNX node tests missing (apt libonnx-testdata)") }
        var results: [Result] = []
        for (suite, directory) in directories {
            let (opTypes, outcome) = Self.run(directory: directory)
            results.append(Result(name: directory.lastPathComponent, suite: suite, opTypes: opTypes, outcome: outcome))
        }
        var unexpected: [String] = []
        for result in results {
            let known = Self.knownFailures[result.name]
            switch (result.outcome, known) {
            case (.failed(let reason), nil): unexpected.append("\(result.suite)/\(result.name): \(reason)")
            case (.passed, .some): unexpected.append("\(result.suite)/\(result.name) passes but is listed as a known failure")
            default: break
            }
        }
        let passed = results.filter { $0.outcome == .passed }.count
        let failed = results.filter { if case .failed = $0.outcome { true } else { false } }.count
        print("onnx-node-tests: \(passed) passed, \(failed) failed, \(results.count - passed - failed) unsupported, \(results.count) total")
        if let path = ProcessInfo.processInfo.environment["APUS_CONFORMANCE_REPORT"] {
            try Self.report(results).write(toFile: path, atomically: true, encoding: .utf8)
        }
        let summary = "\(unexpected.count) unexpected results:\n" + unexpected.prefix(60).joined(separator: "\n")
        #expect(unexpected.isEmpty, Comment(rawValue: summary))
    }

    /// Markdown summary: pass counts per operator and overall.
    static func report(_ results: [Result]) -> String {
        var byOp: [String: (passed: Int, failed: Int, unsupported: Int)] = [:]
        for result in results {
            let key = result.opTypes.isEmpty ? "(unreadable)" : result.opTypes.joined(separator: "+")
            var entry = byOp[key, default: (0, 0, 0)]
            switch result.outcome {
            case .passed: entry.passed += 1
            case .failed: entry.failed += 1
            case .unsupported: entry.unsupported += 1
            }
            byOp[key] = entry
        }
        let passed = results.filter { $0.outcome == .passed }.count
        var lines = [
            "| operators in the test model | passed | failed | not supported |",
            "|---|---:|---:|---:|",
        ]
        for (op, entry) in byOp.sorted(by: { $0.key < $1.key }) {
            lines.append("| \(op) | \(entry.passed) | \(entry.failed) | \(entry.unsupported) |")
        }
        let ran = results.filter { if case .unsupported = $0.outcome { false } else { true } }.count
        var reasons: [String: Int] = [:]
        for result in results {
            guard case .unsupported(let reason) = result.outcome else { continue }
            var key = reason
            if key.hasPrefix("operators ") { key = "operator not implemented: " + key.dropFirst("operators ".count) }
            if key.hasPrefix("reader: ") { key = "reader: " + (key.contains("data type") ? "unsupported data type" : "unsupported feature") }
            reasons[String(key.prefix(90)), default: 0] += 1
        }
        let reasonLines = reasons.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "| \($0.key) | \($0.value) |" }
        return """
            Overall: \(passed) of \(results.count) node tests pass (\(String(format: "%.1f", 100 * Double(passed) / Double(max(results.count, 1))))%); \
            \(passed) of \(ran) tests whose operators, dtypes and attributes Apus supports.

            \(lines.joined(separator: "\n"))

            Why tests were not run (tests per reason):

            | reason | tests |
            |---|---:|
            \(reasonLines.joined(separator: "\n"))

            """
    }
}
