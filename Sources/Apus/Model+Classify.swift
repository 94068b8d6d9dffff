import ApusPreprocess
import ApusTensor
import Foundation

/// One class of a classification result.
public struct Classification: Sendable, Hashable, Codable {
    /// The class index (output column).
    public var index: Int
    /// The class name, or the index as text when the model has no labels.
    public var label: String
    /// The probability (softmax of the logits, or the model's own probabilities).
    public var probability: Float
}

extension Model {
    /// Decodes an image and applies the model's preprocessing, returning exactly the tensor the
    /// model receives.
    ///
    /// - Throws: ``ModelError/noPreprocessing`` or ``ModelError/image(_:_:)``.
    public func preprocess(imageData: Data, source: String = "image", decoding: DecodeOptions = .init()) throws(ModelError)
        -> Tensor
    {
        guard let preprocessing else { throw .noPreprocessing }
        do {
            let image = try ImageDecoder.decode(data: imageData, options: decoding)
            return try preprocessing.apply(to: image)
        } catch {
            throw .image(source, error)
        }
    }

    /// Classifies an image file: decode, preprocess as the model was validated, run, and return
    /// the `top` most probable classes.
    ///
    /// - Throws: ``ModelError`` for unreadable or undecodable images and model errors.
    public func classify(imageAt url: URL, top: Int = 5) throws(ModelError) -> [Classification] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .io(url.path, error.localizedDescription)
        }
        return try classify(imageData: data, top: top, source: url.path)
    }

    /// Classifies encoded image bytes (JPEG or PNG).
    ///
    /// - Throws: ``ModelError`` for undecodable images and model errors.
    public func classify(imageData: Data, top: Int = 5, source: String = "image") throws(ModelError) -> [Classification] {
        let input = try preprocess(imageData: imageData, source: source)
        guard let inputName = inputs.first?.name, let outputName = outputs.first?.name else {
            throw .notAClassifier("the model declares no inputs or outputs")
        }
        let outputs = try run([inputName: input])
        guard let scores = outputs[outputName], scores.dtype == .float32, scores.shape.rank >= 1 else {
            throw .notAClassifier("output '\(outputName)' is not a float32 tensor")
        }
        return try classifications(from: scores, top: top)
    }

    /// Turns a `[1, classes]` score tensor into the `top` classes with probabilities.
    public func classifications(from scores: Tensor, top: Int) throws(ModelError) -> [Classification] {
        let classes = scores.shape.last ?? 0
        guard classes > 0, scores.elementCount == classes else {
            throw .notAClassifier("output shape \(scores.shape) is not [1, classes]")
        }
        let values = scores.withUnsafeBufferPointer(as: Float.self) { Array($0) }
        var probabilities = values
        if outputKind == .logits {
            let maximum = values.max() ?? 0
            var sum = 0.0
            for index in values.indices {
                let e = Foundation.exp(Double(values[index] - maximum))
                probabilities[index] = Float(e)
                sum += e
            }
            for index in probabilities.indices { probabilities[index] = Float(Double(probabilities[index]) / sum) }
        }
        let order = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
        return order.prefix(max(0, top)).map { index in
            let label = labels.flatMap { index < $0.count ? $0[index] : nil } ?? String(index)
            return Classification(index: index, label: label, probability: probabilities[index])
        }
    }
}
