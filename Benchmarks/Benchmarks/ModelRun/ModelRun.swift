import Apus
import ApusTensor
import Benchmark
import Foundation

// End-to-end `Model.run` on the model fixtures (scripts/fixtures/models/cached.sh prints their
// folder; pass it as APUS_MODEL_FIXTURES). After warm-up `run(_:)` allocates only its outputs and
// `run(_:into:)` (outputs reused) nothing at one thread, so "Malloc (total)" per iteration is the
// number to watch. Nothing is registered when the variable is unset.

let benchmarks: @Sendable () -> Void = {
    guard let root = ProcessInfo.processInfo.environment["APUS_MODEL_FIXTURES"], !root.isEmpty else {
        print("APUS_MODEL_FIXTURES is not set: no model benchmarks (set it to the folder cached.sh prints)")
        return
    }
    // The harness's own mallocs per iteration (its clock and bookkeeping), to subtract from the
    // model rows: with the same metrics, an iteration that runs nothing.
    Benchmark(
        "Model.run baseline (empty iteration)",
        configuration: .init(
            metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal, .mallocBytesCount],
            timeUnits: .milliseconds, warmupIterations: 3,
            maxDuration: .seconds(2), maxIterations: 200)
    ) { benchmark in
        benchmark.startMeasurement()
        blackHole(benchmark.scaledIterations.count)
    }
    let names = (ProcessInfo.processInfo.environment["APUS_BENCH_MODELS"] ?? "resnet18,mobilenet_v2")
        .split(separator: ",").map { String($0) }
    for name in names {
        let folder = URL(filePath: root).appending(path: name)
        let modelURL = folder.appending(path: "model.onnx")
        guard FileManager.default.fileExists(atPath: modelURL.path) else {
            print("no fixture \(modelURL.path): skipped")
            continue
        }
        for threads in [1, 2] {
            for reuseOutputs in [false, true] {
                // Loaded on first use, inside the process that measures, before measurement starts.
                nonisolated(unsafe) var loaded: (Model, [String: Tensor])?
                nonisolated(unsafe) var outputs: [String: Tensor] = [:]
                Benchmark(
                    reuseOutputs ? "Model.run(into:) \(name)" : "Model.run \(name)",
                    configuration: .init(
                        metrics: [
                            .wallClock, .cpuTotal, .throughput, .mallocCountTotal, .mallocBytesCount,
                        ],
                        tags: ["threads": "\(threads)"], timeUnits: .milliseconds, warmupIterations: 3,
                        maxDuration: .seconds(5), maxIterations: 200)
                ) { benchmark in
                    if loaded == nil {
                        do {
                            let model = try Model(contentsOf: modelURL, options: .init(threadCount: threads))
                            let input = try Tensor(contentsOfNPY: folder.appending(path: "input_0.npy"))
                            guard let inputName = model.inputs.first?.name else { return }
                            loaded = (model, [inputName: input])
                            // The first run plans and makes the output tensors `run(_:into:)` reuses.
                            if reuseOutputs { try model.run([inputName: input], into: &outputs) }
                        } catch {
                            benchmark.error("\(name): \(error)")
                            return
                        }
                    }
                    guard let (model, feeds) = loaded else { return }
                    benchmark.startMeasurement()
                    do {
                        if reuseOutputs {
                            try model.run(feeds, into: &outputs)
                            blackHole(outputs)
                        } else {
                            blackHole(try model.run(feeds))
                        }
                    } catch {
                        benchmark.error("\(name): \(error)")
                    }
                }
            }
        }
    }
}
