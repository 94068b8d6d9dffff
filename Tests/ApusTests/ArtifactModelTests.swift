import Apus
import Foundation
import Testing

/// `.apus` files written by the Python exporter, loaded by `Model`: the checksum and every
/// PyTorch-computed golden must pass, preprocessing and labels must come with the file.
@Suite(.serialized) struct ArtifactModelTests {
    static let names = ["resnet18", "mobilenet_v3_small", "resnet18_float16", "mobilenet_v2_dynamic"]

    func url(_ name: String) -> URL? {
        guard let directory = Fixtures.artifactsDirectory else {
            if Fixtures.required { Issue.record("artifact fixtures missing: run scripts/test.sh") }
            return nil
        }
        return directory.appending(path: "\(name).apus")
    }

    @Test(arguments: names)
    func exporterArtifactsVerify(name: String) throws {
        guard let url = url(name) else { return }
        let model = try Model(contentsOf: url, options: .init(verify: .all))
        #expect(model.goldens.count == 3)
        #expect(model.goldens.allSatisfy { $0.source == "pytorch" })
        #expect(model.labels?.count == 1000)
        #expect(model.preprocessing != nil)
        let reports = try model.verifyGoldens()
        #expect(!reports.isEmpty && reports.allSatisfy(\.passed), "\(reports)")
        // The outputs must have a real scale, or the absolute tolerance would make the check vacuous.
        #expect(reports.allSatisfy { $0.maxAbsoluteExpected > 0.1 }, "\(reports)")
        for report in reports { print("golden \(name): \(report)") }
        if name.hasSuffix("float16") {
            #expect(model.metadata["weights_dtype"] == "float16")
        }
    }

    @Test func dynamicBatchRunsAtSeveralBatchSizes() throws {
        guard let url = url("mobilenet_v2_dynamic") else { return }
        let model = try Model(contentsOf: url)
        let name = try #require(model.inputs.first?.name)
        let golden = try #require(model.goldens.first)
        let one = try #require(golden.inputs[name])
        let single = try #require(model.run([name: one])[model.outputs[0].name])
        // Three copies of the same image must give three copies of the same row.
        let values = try one.scalars(as: Float.self)
        let batch = Tensor(
            shape: Shape([3] + Array(one.shape.dimensions.dropFirst())), scalars: values + values + values)
        let rows = try #require(model.run([name: batch])[model.outputs[0].name])
        #expect(rows.shape == [3, 1000])
        let expected = try single.scalars(as: Float.self)
        let actual = try rows.scalars(as: Float.self)
        for row in 0..<3 {
            let slice = Array(actual[row * 1000..<(row + 1) * 1000])
            let error = zip(slice, expected).map { abs($0 - $1) }.max() ?? .infinity
            #expect(error <= 1e-4, "row \(row) differs by \(error)")
        }
    }

    @Test func tamperedArtifactFailsItsChecksum() throws {
        guard let source = url("mobilenet_v3_small") else { return }
        var bytes = try Data(contentsOf: source)
        bytes[bytes.count - 100] ^= 0x55
        let copy = FileManager.default.temporaryDirectory.appending(path: "apus-tampered-\(UUID().uuidString).apus")
        try bytes.write(to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        #expect {
            try Model(contentsOf: copy, options: .init(verify: .checksum))
        } throws: { error in
            guard case ModelError.artifact(_, .checksumMismatch) = error else { return false }
            return true
        }
    }

    @Test func demoArtifactClassifiesLikePyTorch() throws {
        guard let url = Fixtures.demoArtifact, let directory = Fixtures.demoDirectory else {
            if Fixtures.required { Issue.record("demo artifact missing") }
            return
        }
        let model = try Model(contentsOf: url, options: .init(verify: .all))
        let cat = try model.classify(imageAt: directory.appending(path: "photos/chelsea.png"), top: 5)
        #expect(cat.first?.label == "Egyptian cat")
        let espresso = try model.classify(imageAt: directory.appending(path: "photos/coffee.png"), top: 1)
        #expect(espresso.first?.label == "espresso")
    }
}
