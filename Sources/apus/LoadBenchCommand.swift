import Apus
import ArgumentParser
import Foundation

/// Loads a model and reports load time, first-run latency and memory (used by
/// scripts/bench/large_model.py).
struct LoadBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load-bench", abstract: "Time loading a model and its first run; print VmRSS.",
        shouldDisplay: false)

    @Argument(help: "Model file (.apus or .onnx).")
    var model: String

    @Option(help: "Intra-op threads (default: the CPUs this process may use).")
    var threads: Int?

    @Flag(help: "Skip the first run (only load).")
    var noRun = false

    @Option(help: "Seconds to sleep after the last measurement (so another process can be measured).")
    var sleep: Double = 0

    func run() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let loaded = try Model(contentsOf: URL(filePath: model), options: .init(threadCount: threads))
        let loadMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        emit(String(format: "load_ms %.2f", loadMs))
        emit("load_rss_kb \(Self.status("VmRSS"))")
        if !noRun {
            var feeds: [String: Tensor] = [:]
            for input in loaded.inputs {
                let dims = (input.dimensions ?? [.fixed(1)]).map { dimension -> Int in
                    if case .fixed(let size) = dimension { return size }
                    return 1
                }
                let tensor = try Tensor(zeros: Shape(dims), dtype: input.dtype ?? .float32)
                if tensor.dtype == .float32 {
                    let p = tensor.pointer(as: Float.self)
                    for i in 0..<tensor.elementCount { p[i] = Float(i % 17) / 17 - 0.5 }
                }
                feeds[input.name] = tensor
            }
            let runStart = DispatchTime.now().uptimeNanoseconds
            let outputs = try loaded.run(feeds)
            let runMs = Double(DispatchTime.now().uptimeNanoseconds - runStart) / 1e6
            emit(String(format: "first_run_ms %.2f", runMs))
            emit("run_rss_kb \(Self.status("VmRSS"))")
            let secondStart = DispatchTime.now().uptimeNanoseconds
            _ = try loaded.run(feeds)
            emit(String(format: "second_run_ms %.2f", Double(DispatchTime.now().uptimeNanoseconds - secondStart) / 1e6))
            if let first = loaded.outputs.first, let tensor = outputs[first.name], tensor.dtype == .float32 {
                let values = tensor.withUnsafeBufferPointer(as: Float.self) { Array($0.prefix(4)) }
                emit("output_head \(values)")
            }
        }
        emit("ready")
        if sleep > 0 { Thread.sleep(forTimeInterval: sleep) }
    }

    /// Writes a line unbuffered, so a parent process reading a pipe sees it at once.
    func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// A `kB` field of /proc/self/status (0 when unavailable).
    static func status(_ field: String) -> Int { procStatusKilobytes(field) ?? 0 }
}
