import Apus
import ArgumentParser
import Dispatch
import Foundation

/// `apus profile MODEL`: latency (median, p99) and time per operator type of repeated runs on an
/// input read from .npy (or zeros), for performance work. Hidden from the help.
struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Time repeated runs of a model and break the time down by operator type.",
        shouldDisplay: false)

    @Argument(help: "Model file (.onnx or .apus).")
    var model: String

    @Option(help: "Intra-op threads.")
    var threads: Int = 1

    @Option(help: "Timed runs.")
    var runs: Int = 50

    @Option(help: "Untimed warm-up runs.")
    var warmup: Int = 5

    @Option(help: "The input as .npy (default: zeros of the declared shape, batch 1).")
    var input: String?

    @Flag(help: "Also time every run with per-step profiling and print the time per operator type.")
    var ops = false

    @Option(help: "Also print the slowest N steps (with --ops).")
    var steps: Int = 0

    @Flag(help: "Print one JSON line instead of text.")
    var json = false

    func run() throws {
        let loaded = try Model(contentsOf: URL(filePath: model), options: .init(threadCount: threads))
        guard loaded.inputs.count == 1 else { throw ValidationError("profile supports single-input models") }
        let info = loaded.inputs[0]
        let tensor: Tensor
        if let input {
            tensor = try Tensor(contentsOfNPY: URL(filePath: input))
        } else {
            let dims = (info.dimensions ?? []).map { dimension -> Int in
                if case .fixed(let size) = dimension { return size }
                return 1
            }
            tensor = try Tensor(zeros: Shape(dims), dtype: .float32)
        }
        let feeds = [info.name: tensor]
        let plan = try loaded.plan(for: feeds)
        let ordered = [tensor]
        for _ in 0..<warmup { _ = try plan.run(ordered) }
        var times: [Double] = []
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpuStart =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try plan.run(ordered)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpuEnd =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3
        let cpuPerRun = (cpuEnd - cpuStart) / Double(max(1, runs))
        times.sort()
        let median = times[times.count / 2]
        let p99 = times[min(times.count - 1, Int((Double(times.count) * 0.99).rounded(.up)) - 1)]
        var byType: [(String, Double, Int)] = []
        if ops {
            var profile: [UInt64] = []
            for _ in 0..<runs { try plan.runProfiled(ordered, into: &profile) }
            var totals: [String: (Double, Int)] = [:]
            for (index, step) in plan.stepSummaries.enumerated() {
                let ms = Double(profile[index]) / 1e6 / Double(runs)
                totals[step.opType, default: (0, 0)].0 += ms
                totals[step.opType, default: (0, 0)].1 += 1
            }
            let summaries = plan.stepSummaries
            let slowest = profile.indices.sorted { profile[$0] > profile[$1] }.prefix(steps)
            for index in slowest {
                let step = summaries[index]
                let ms = Double(profile[index]) / 1e6 / Double(runs)
                FileHandle.standardError.write(
                    Data(
                        String(format: "  %8.3f ms  %@ %@ -> %@\n", ms, step.opType, step.node, "\(step.outputShapes)")
                            .utf8))
            }
            byType = totals.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.1 > $1.1 }
        }
        let blas = Model.blasInfo.map { "\($0.coreName) (\($0.coreTypeSource.rawValue))" } ?? "none"
        if json {
            var fields = [
                "\"model\":\"\(model)\"", "\"threads\":\(threads)", "\"runs\":\(runs)",
                String(format: "\"median_ms\":%.4f", median), String(format: "\"p99_ms\":%.4f", p99),
                String(format: "\"min_ms\":%.4f", times[0]), String(format: "\"cpu_ms\":%.4f", cpuPerRun),
                "\"blas\":\"\(blas)\"",
            ]
            if ops {
                let entries = byType.map { String(format: "\"%@\":%.4f", $0.0, $0.1) }
                fields.append("\"ops_ms\":{" + entries.joined(separator: ",") + "}")
            }
            print("{" + fields.joined(separator: ",") + "}")
        } else {
            print(
                String(
                    format: "%@: %d threads, %d runs: median %.3f ms, p99 %.3f ms (BLAS %@)", model, threads, runs,
                    median, p99, blas))
            for (type, ms, count) in byType {
                print(String(format: "  %-22@ %8.3f ms  %3d steps", type, ms, count))
            }
        }
    }
}
