import Apus
import ApusOps
import ApusPreprocess
import ArgumentParser
import Foundation

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert an ONNX model into one .apus artifact with preprocessing, labels and goldens.")

    @Argument(help: "The .onnx model.")
    var model: String

    @Option(name: .shortAndLong, help: "The .apus file to write.")
    var output: String

    @Option(help: "Class names, one per line.")
    var labels: String?

    @Option(help: "Preprocessing spec JSON.")
    var preprocess: String?

    @Option(name: .customLong("golden-input"), help: "NAME=FILE.npy; the n-th occurrence of each name forms example n.")
    var goldenInputs: [String] = []

    @Option(help: "Storage type of the weights: float32 or float16 (half the size, upcast at load).")
    var weights: String = "float32"

    @Option(help: "What the first output holds: logits or probabilities.")
    var outputKind: String = "logits"

    @Flag(
        help: """
            Store only the plain weights: the convolutions' weights are then packed for the kernels \
            when the model is loaded (slower start, smaller file) instead of stored packed.
            """)
    var noPrepack = false

    @Option(
        help: """
            The CPUs the stored packed weights are laid out for: avx512, avx2 (AVX2 and FMA without \
            AVX-512, where OpenBLAS's kernel runs most layers), or host (the kind this machine is). Any \
            CPU runs the file with the same results; on the other kind the plans pack the weights at load.
            """)
    var prepackFor: PackTarget = .avx512

    func run() throws {
        guard weights == "float32" || weights == "float16" else {
            throw ValidationError("--weights must be float32 or float16, got \(weights)")
        }
        guard Model.OutputKind(rawValue: outputKind) != nil else {
            throw ValidationError("--output-kind must be logits or probabilities")
        }
        let source = URL(filePath: model)
        let optimized = try Optimizer.optimize(Topology.sorted(ONNXReader.read(contentsOf: source)))
        var stored = optimized
        var float16Count = 0
        if weights == "float16" {
            for (name, tensor) in stored.initializers where tensor.dtype == .float32 && tensor.elementCount >= 256 {
                let half = try Tensor(zeros: tensor.shape, dtype: .float16)
                convertFloat32ToFloat16(
                    tensor.pointer(as: Float.self), half.rawPointer.assumingMemoryBound(to: UInt16.self),
                    count: tensor.elementCount)
                stored.initializers[name] = half
                float16Count += 1
            }
        }
        var prepacked: PrepackWeights.Report?
        if !noPrepack && float16Count == 0 {
            // The packed copies are float32: a float16 artifact, kept small on purpose, packs at load.
            (stored, prepacked) = try PrepackWeights.apply(stored, target: prepackFor.target, threadCount: 2)
        }
        let labelList = try labels.map(readLabels)
        // Decoding refuses a spec Apus cannot apply; the file's bytes are stored as they are.
        let preprocessJSON = try preprocess.map(readPreprocessSpec)?.json
        // Goldens are computed by Apus on the graph as stored (after any float16 rounding).
        var goldens: [GoldenExample] = []
        if !goldenInputs.isEmpty {
            var examples: [[String: Tensor]] = []
            var occurrences: [String: Int] = [:]
            for entry in goldenInputs {
                guard let separator = entry.firstIndex(of: "=") else {
                    throw ValidationError("--golden-input expects NAME=FILE.npy, got '\(entry)'")
                }
                let name = String(entry[..<separator])
                let index = occurrences[name, default: 0]
                occurrences[name] = index + 1
                while examples.count <= index { examples.append([:]) }
                examples[index][name] = try Tensor(
                    contentsOfNPY: URL(filePath: String(entry[entry.index(after: separator)...])))
            }
            let runnable = float16Count > 0 ? try Model.upcastFloat16Initializers(stored) : stored
            let reference = try Model(graph: runnable, options: .init(optimize: false))
            for inputs in examples {
                let outputs = try reference.run(inputs)
                goldens.append(
                    GoldenExample(
                        inputs: inputs, outputs: outputs, tolerance: (relative: 1e-5, absolute: 1e-6), source: "apus"))
            }
        }
        var metadata = [
            "producer": "apus convert",
            "source": source.lastPathComponent,
            "created": ISO8601DateFormatter().string(from: Date()),
            "weights_dtype": weights,
        ]
        if float16Count > 0 { metadata["float16_tensors"] = String(float16Count) }
        if let prepacked { prepacked.record(in: &metadata) }
        var contents = ArtifactContents(
            graph: stored, preprocessJSON: preprocessJSON, labels: labelList, outputKind: outputKind, goldens: goldens,
            metadata: metadata)
        contents.float16Weights = float16Count > 0
        try ArtifactWriter.write(contents, to: URL(filePath: output))
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        print(
            "wrote \(output): \(formatBytes(size)), \(stored.nodes.count) nodes, \(stored.initializers.count) tensors, "
                + "\(goldens.count) golden example(s) computed by Apus" + (prepacked.map { ", \($0.summary)" } ?? ""))
    }
}

struct PrepackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepack",
        abstract: "Rewrite an .apus artifact (from the Python exporter, say) with its convolution weights stored "
            + "packed for the kernels, so that loading it packs nothing.",
        discussion: """
            The graph is optimized as at load (BatchNorm folded, activations fused) and every convolution \
            with constant weights gets them in the layout its plan wants on a CPU of the --for kind (weights \
            packed before are replaced). Labels, preprocessing, golden examples and metadata are kept. \
            `apus convert` does this by default.
            """)

    @Argument(help: "The .apus artifact to read.")
    var model: String

    @Option(name: .shortAndLong, help: "The .apus file to write (may not be the input).")
    var output: String

    @Option(
        name: .customLong("for"),
        help: "The CPUs to pack for: avx512, avx2 (AVX2 and FMA, no AVX-512), or host (the kind this machine is).")
    var packTarget: PackTarget = .avx512

    func run() throws {
        let source = URL(filePath: model)
        let target = URL(filePath: output)
        guard source.standardizedFileURL.path != target.standardizedFileURL.path else {
            throw ValidationError("--output must differ from the input: its weights are mapped while writing")
        }
        var contents = ArtifactContents(try ArtifactReader.read(contentsOf: source))
        guard !contents.float16Weights else {
            throw ValidationError("\(model) stores float16 weights; its convolutions are packed at load")
        }
        let (graph, report) = try PrepackWeights.apply(
            try Optimizer.optimize(contents.graph), target: packTarget.target, threadCount: 2)
        contents.graph = graph
        report.record(in: &contents.metadata)
        try ArtifactWriter.write(contents, to: target)
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        print("wrote \(output): \(formatBytes(size)), \(report.summary)")
    }
}

extension PrepackWeights.Report {
    /// One line for the CLI: what was packed, or why nothing was.
    var summary: String {
        skipped.map { "weights not prepacked (\($0))" }
            ?? "\(convolutions) convolutions prepacked for \(target.rawValue) (\(formatBytes(bytes)))"
    }

    /// Notes the packing in an artifact's metadata.
    func record(in metadata: inout [String: String]) {
        guard convolutions > 0 else { return }
        metadata["prepacked_convolutions"] = String(convolutions)
        metadata["prepacked_for"] = target.rawValue
        metadata["prepacked_format"] = formats.sorted().joined(separator: " ")
    }
}

/// `--prepack-for` / `--for`: a kind of CPU, or the one this machine is.
enum PackTarget: String, ExpressibleByArgument, CaseIterable {
    case avx512, avx2, host

    var target: PrepackedWeights.Target {
        switch self {
        case .avx512: .avx512
        case .avx2: .avx2
        case .host: PackedGemm.hasAVX512 ? .avx512 : .avx2
        }
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check an artifact's SHA-256 and re-run its golden examples; exit 1 on any mismatch.")

    @Argument(help: "The .apus artifact.")
    var model: String

    @Option(help: "Intra-op threads.")
    var threads: Int?

    func run() throws {
        let url = URL(filePath: model)
        var failed = false
        do {
            var options = ArtifactReader.Options()
            options.verifyChecksum = true
            let artifact = try ArtifactReader.read(contentsOf: url, options: options)
            print("checksum: sha256 \(artifact.dataSHA256) ok")
        } catch {
            print("checksum: FAILED: \(error)")
            failed = true
        }
        if !failed {
            let model = try Model(contentsOf: url, options: .init(threadCount: threads))
            if model.goldens.isEmpty { print("goldens: none stored") }
            for report in try model.verifyGoldens() {
                print(report)
                if !report.passed { failed = true }
            }
        }
        if failed { throw ExitCode(1) }
        print("verified")
    }
}
