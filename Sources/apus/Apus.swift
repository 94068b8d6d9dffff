import Apus
import ArgumentParser
import Foundation

@main
struct ApusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apus",
        abstract: "Run and inspect PyTorch-exported models on the CPU.",
        subcommands: [RunCommand.self, InspectCommand.self, BenchCommand.self]
    )
}

/// Options shared by commands that load a model.
struct LoadOptions: ParsableArguments {
    @Argument(help: "Model file (.onnx).")
    var model: String

    @Option(help: "Intra-op threads (default: the CPUs this process may use).")
    var threads: Int?

    func load() throws -> Model {
        try Model(contentsOf: URL(filePath: model), options: .init(threadCount: threads))
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

    func run() throws {
        let model = try load.load()
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
            let safeName = output.name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." ? $0 : "_" }
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
        let shapes = summary.inputShapes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        print(String(format: "FLOPs: %.3f G at %@", Double(summary.flops) / 1e9, shapes))
        print("threads: \(model.threadCount)")
        if let blas = Model.blasInfo {
            print("OpenBLAS: core \(blas.coreName) (\(blas.coreTypeSource.rawValue)\(blas.requestedCoreType.map { ", requested \($0)" } ?? "")), \(blas.library)")
        }
    }
}

func formatBytes(_ bytes: Int) -> String {
    if bytes >= 1 << 30 { return String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
    if bytes >= 1 << 20 { return String(format: "%.1f MiB", Double(bytes) / Double(1 << 20)) }
    if bytes >= 1 << 10 { return String(format: "%.1f KiB", Double(bytes) / Double(1 << 10)) }
    return "\(bytes) B"
}
