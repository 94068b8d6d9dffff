import Apus
import ApusPreprocess
import ArgumentParser
import Foundation

/// Times decode + preprocessing of one image (used by scripts/bench/preprocess_bench.py).
struct PreprocessBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess-bench", abstract: "Time decoding and preprocessing an image.", shouldDisplay: false)

    @Argument(help: "A JPEG or PNG image.")
    var image: String

    @Option(help: "Preprocessing spec JSON (default: the ImageNet preset, crop 224).")
    var spec: String?

    @Option(help: "Timed runs (after one warm-up run).")
    var runs: Int = 20

    @Option(help: "Write the last tensor as raw float32 here.")
    var output: String?

    @Flag(help: "Time the separate steps (decode, then apply) instead of the fused path.")
    var separate = false

    @Flag(help: "Time decoding only (ImageDecoder.decode); no tensor is computed.")
    var decodeOnly = false

    @Flag(help: "Also print every run's time.")
    var printTimes = false

    func run() throws {
        let pipeline: PreprocessSpec
        if let spec {
            pipeline = try readPreprocessSpec(atPath: spec).spec
        } else {
            pipeline = .imageClassification(cropSize: 224)
        }
        let url = URL(filePath: image)
        func once() throws -> Tensor {
            let data = try Data(contentsOf: url)
            if decodeOnly {
                let image = try ImageDecoder.decode(data: data)
                return try Tensor(shape: [1, 1, 1, 1], checkedScalars: [Float(image.pixels[0])])
            }
            if separate { return try pipeline.apply(to: ImageDecoder.decode(data: data)) }
            return try pipeline.apply(toImageData: data)
        }
        var tensor = try once()
        var times: [Double] = []
        for _ in 0..<max(1, runs) {
            let start = DispatchTime.now().uptimeNanoseconds
            tensor = try once()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        if printTimes { print("times_ms " + times.map { String(format: "%.3f", $0) }.joined(separator: " ")) }
        times.sort()
        let median =
            times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        print("shape \(tensor.shape.dimensions) \(tensor.dtype)")
        print(String(format: "median_ms %.2f", median))
        print(String(format: "min_ms %.2f max_ms %.2f runs %d", times[0], times[times.count - 1], times.count))
        if let output {
            let bytes = Data(bytes: tensor.rawPointer, count: tensor.byteCount)
            try bytes.write(to: URL(filePath: output))
        }
    }
}
