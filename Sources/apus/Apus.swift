import Apus
import ApusPreprocess
import ArgumentParser
import Foundation

@main
struct ApusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apus",
        abstract: "Run and inspect PyTorch-exported models on the CPU.",
        subcommands: [
            ClassifyCommand.self, RunCommand.self, InspectCommand.self, BenchCommand.self, ConvertCommand.self,
            PrepackCommand.self,
            VerifyCommand.self, PreprocessCommand.self, PreprocessBenchCommand.self, LoadBenchCommand.self,
            ProfileCommand.self,
        ]
    )
}

/// Options shared by commands that load a model.
struct LoadOptions: ParsableArguments {
    @Argument(help: "Model file (.onnx).")
    var model: String

    @Option(help: "Intra-op threads (default: the CPUs this process may use).")
    var threads: Int?

    @Option(help: "Class names, one per line (for models without labels).")
    var labels: String?

    @Option(help: "Preprocessing spec JSON (for models without one).")
    var preprocess: String?

    /// The model, with `batchTailBytes` for ``Model/Options/batchTailBytes``.
    func load(batchTailBytes: Int = 0) throws -> Model {
        return try Model(
            contentsOf: URL(filePath: model), preprocessing: preprocess.map(readPreprocessSpec)?.spec,
            labels: labels.map(readLabels),
            options: .init(threadCount: threads, batchTailBytes: batchTailBytes))
    }
}

struct ClassifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Classify images with the model's own preprocessing and print the top classes.")

    @OptionGroup var load: LoadOptions

    @Argument(help: "JPEG or PNG images.")
    var images: [String]

    @Option(help: "How many classes to print per image.")
    var top: Int = 5

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let model = try load.load()
        var results: [[String: Any]] = []
        for image in images {
            let classes = try model.classify(imageAt: URL(filePath: image), top: top)
            if json {
                results.append([
                    "image": image,
                    "top": classes.map {
                        ["index": $0.index, "label": $0.label, "probability": Double($0.probability)]
                    },
                ])
            } else {
                print(image)
                for item in classes {
                    print(String(format: "  %6.2f%%  %4d  %@", Double(item.probability) * 100, item.index, item.label))
                }
            }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess", abstract: "Write the exact tensor the model receives for an image, as .npy.")

    @Argument(help: "A preprocessing spec (.json) or a model with one.")
    var specOrModel: String

    @Argument(help: "A JPEG or PNG image.")
    var image: String

    @Option(name: .shortAndLong, help: "Output .npy file.")
    var output: String

    func run() throws {
        let spec: PreprocessSpec
        if specOrModel.hasSuffix(".json") {
            spec = try readPreprocessSpec(atPath: specOrModel).spec
        } else {
            guard let own = try Model(contentsOf: URL(filePath: specOrModel)).preprocessing else {
                throw ValidationError("\(specOrModel) has no preprocessing spec")
            }
            spec = own
        }
        let decoded = try ImageDecoder.decode(data: Data(contentsOf: URL(filePath: image)))
        let tensor = try spec.apply(to: decoded)
        try tensor.writeNPY(to: URL(filePath: output))
        print("\(image): \(tensor.dtype) \(tensor.shape) -> \(output)")
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a model on .npy inputs and write every output as OUTPUT_NAME.npy.")

    @OptionGroup var load: LoadOptions

    @Option(name: .customLong("input"), help: "An input as NAME=FILE.npy (repeatable).")
    var inputs: [String] = []

    @Option(help: "Folder for the outputs.")
    var outputDir: String = "."

    @Flag(help: "Run a split batch's late layers on the whole batch, as `apus bench --batch-tail` does.")
    var batchTail = false

    func run() throws {
        let model = try load.load(batchTailBytes: batchTail ? GraphRunner.Options.recommendedBatchTailBytes : 0)
        var feeds: [String: Tensor] = [:]
        for entry in inputs {
            guard let separator = entry.firstIndex(of: "=") else {
                throw ValidationError("--input expects NAME=FILE.npy, got '\(entry)'")
            }
            let name = String(entry[..<separator])
            let path = String(entry[entry.index(after: separator)...])
            feeds[name] = try Tensor(contentsOfNPY: URL(filePath: path))
        }
        if feeds.isEmpty, model.inputs.count == 1, inputs.isEmpty {
            throw ValidationError("give the input as --input \(model.inputs[0].name)=FILE.npy")
        }
        let outputs = try model.run(feeds)
        let directory = URL(filePath: outputDir)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for output in model.outputs {
            guard let tensor = outputs[output.name] else { continue }
            let safeName = output.name.map {
                $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." ? $0 : "_"
            }
            let url = directory.appending(path: String(safeName) + ".npy")
            try tensor.writeNPY(to: url)
            print("\(output.name): \(tensor.dtype) \(tensor.shape) -> \(url.path)")
        }
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show a model's inputs, outputs, operators, parameters and FLOPs.")

    @OptionGroup var load: LoadOptions

    func run() throws {
        let model = try load.load()
        let summary = try model.summary()
        print("model: \(load.model)")
        print("inputs:")
        for input in model.inputs {
            let dims = input.dimensions.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "?"
            print("  \(input.name): \(input.dtype?.rawValue ?? "?") \(dims)")
        }
        print("outputs:")
        for output in model.outputs {
            let shape = summary.outputShapes[output.name].map(\.description) ?? "?"
            print("  \(output.name): \(output.dtype?.rawValue ?? "?") \(shape)")
        }
        print("nodes: \(model.graph.nodes.count) after optimization")
        for (op, count) in summary.operatorCounts.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
            print("  \(op.padding(toLength: 24, withPad: " ", startingAt: 0)) \(count)")
        }
        print("parameters: \(summary.parameterCount) (\(formatBytes(summary.parameterBytes)))")
        let shapes = summary.inputShapes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
            separator: ", ")
        print(String(format: "FLOPs: %.3f G at %@", Double(summary.flops) / 1e9, shapes))
        if !model.metadata.isEmpty {
            print("metadata:")
            for (key, value) in model.metadata.sorted(by: { $0.key < $1.key }) { print("  \(key): \(value)") }
        }
        if let spec = model.preprocessing {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print("preprocessing: \(String(decoding: try encoder.encode(spec), as: UTF8.self))")
        }
        if let labels = model.labels {
            print(
                "labels: \(labels.count) (\(labels.prefix(3).joined(separator: ", "))\(labels.count > 3 ? ", …" : ""))")
        }
        if !model.goldens.isEmpty {
            let sources = Set(model.goldens.map(\.source)).sorted().joined(separator: ", ")
            let tolerance = model.goldens[0].tolerance
            print(
                "goldens: \(model.goldens.count) from \(sources) (tolerance relative \(tolerance.relative), absolute \(tolerance.absolute))"
            )
        }
        if load.model.hasSuffix(".apus"), let artifact = try? ArtifactReader.read(contentsOf: URL(filePath: load.model))
        {
            print("format: apus \(artifact.formatVersion), data sha256 \(artifact.dataSHA256)")
        }
        print("threads: \(model.threadCount)")
        if let blas = Model.blasInfo {
            print(
                "OpenBLAS: core \(blas.coreName) (\(blas.coreTypeSource.rawValue)\(blas.requestedCoreType.map { ", requested \($0)" } ?? "")), \(blas.library)"
            )
        }
    }
}

func formatBytes(_ bytes: Int) -> String {
    if bytes >= 1 << 30 { return String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
    if bytes >= 1 << 20 { return String(format: "%.1f MiB", Double(bytes) / Double(1 << 20)) }
    if bytes >= 1 << 10 { return String(format: "%.1f KiB", Double(bytes) / Double(1 << 10)) }
    return "\(bytes) B"
}
