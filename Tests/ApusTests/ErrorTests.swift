import Apus
import Foundation
import Testing

/// Bad input at the `Model` level: each case gets its specific typed error, nothing crashes.
@Suite struct ModelErrorTests {
    func temporaryFile(_ bytes: [UInt8], name: String = "model.onnx") throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appending(path: "apus-errors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appending(path: name)
        try Data(bytes).write(to: url)
        return url
    }

    func fixture(_ name: String) -> URL? {
        guard Fixtures.modelNames.contains(name), let directory = Fixtures.modelsDirectory else { return nil }
        return directory.appending(path: "\(name)/model.onnx")
    }

    @Test func notONNXAtAll() throws {
        let url = try temporaryFile(Array("this is not a model".utf8))
        #expect {
            try Model(contentsOf: url)
        } throws: { error in
            guard case ModelError.onnx = error else { return false }
            return true
        }
    }

    @Test func truncatedModel() throws {
        guard let source = fixture("resnet18_embedded") else { return }
        let bytes = try [UInt8](Data(contentsOf: source))
        for fraction in [0.001, 0.3, 0.77] {
            let url = try temporaryFile(Array(bytes.prefix(Int(Double(bytes.count) * fraction))))
            #expect(throws: ModelError.self) { try Model(contentsOf: url) }
        }
    }

    @Test func unknownOperatorIsReportedAtLoadWithItsNode() throws {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "mystery", opType: "Frobnicate", inputs: ["x"], outputs: ["y"])])
        #expect {
            try Model(graph: graph)
        } throws: { error in
            guard case ModelError.graph(.unsupportedOperators(let byType)) = error else { return false }
            return byType["Frobnicate"] == ["mystery"]
        }
    }

    @Test func missingInitializerIsADanglingValue() throws {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(1), .fixed(4), .fixed(4)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "conv.weight"], outputs: ["y"])])
        #expect {
            try Model(graph: graph)
        } throws: { error in
            guard case ModelError.graph(.undefinedValue("conv.weight", node: "conv")) = error else { return false }
            return true
        }
    }

    @Test func wrongInputNameShapeAndDType() throws {
        guard let url = fixture("resnet18") else { return }
        let model = try Model(contentsOf: url)
        let name = try #require(model.inputs.first?.name)
        let good = Tensor(shape: [1, 3, 224, 224], scalars: [Float](repeating: 0, count: 3 * 224 * 224))
        #expect {
            try model.run(["nope": good])
        } throws: { error in
            guard case ModelError.graph(.unknownInput("nope", _)) = error else { return false }
            return true
        }
        let wrongShape = Tensor(shape: [1, 3, 200, 224], scalars: [Float](repeating: 0, count: 3 * 200 * 224))
        #expect {
            try model.run([name: wrongShape])
        } throws: { error in
            guard case ModelError.graph(.inputShapeMismatch(_, _, [1, 3, 200, 224], _)) = error else { return false }
            return true
        }
        let wrongType = Tensor(shape: [1, 3, 224, 224], scalars: [Int64](repeating: 0, count: 3 * 224 * 224))
        #expect {
            try model.run([name: wrongType])
        } throws: { error in
            guard case ModelError.graph(.inputDTypeMismatch(_, expected: .float32, actual: .int64)) = error else {
                return false
            }
            return true
        }
    }
}
