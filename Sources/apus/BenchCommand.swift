import Apus
import ApusGraph
import ApusTensor
import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `apus bench`: load time, first-run and steady-state latency, throughput, peak memory and
/// achieved GFLOP/s of one model, optionally with a per-node profile.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a model's load time, latency, throughput, peak memory and GFLOP/s.",
        discussion: """
            The input is seeded noise of the model's declared input shape (symbolic batch dimensions \
            take --batch, other symbolic dimensions 1), or the given .npy files. Latency is the wall time \
            of Model.run after --warmup runs; the first run (which makes the plan) is reported apart.
            """)

    @Argument(help: "Model file (.onnx).")
    var model: String

    @Option(help: "Intra-op threads (default: the CPUs this process may use).")
    var threads: Int?

    @Option(help: "Size of symbolic batch dimensions.")
    var batch: Int = 1

    @Option(help: "Runs before measuring (after the first run).")
    var warmup: Int = 3

    @Option(help: "Measured runs (default: as many as fit in --seconds).")
    var runs: Int?

    @Option(help: "Measure for this many seconds (default 3 when --runs is not given).")
    var seconds: Double?

    @Option(name: .customLong("input"), help: "Use an input from a file, NAME=FILE.npy (repeatable).")
    var inputFiles: [String] = []

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Time every node and every operator type (GFLOP/s per convolution).")
    var profile = false

    @Option(help: "Nodes listed in the text profile.")
    var top: Int = 25

    @Flag(help: "Run a batch as one whole-batch plan even when it could run sample by sample.")
    var wholeBatch = false

    @Flag(
        help: """
            Run a split batch's late layers on the whole batch (wider products; each sample's result \
            is then equal within rounding, not bitwise, to running it alone).
            """)
    var batchTail = false

    func validate() throws {
        if batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
        if warmup < 0 { throw ValidationError("--warmup must not be negative, got \(warmup)") }
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1, got \(runs)") }
        if let seconds, !(seconds > 0) { throw ValidationError("--seconds must be positive, got \(seconds)") }
        if runs != nil, seconds != nil { throw ValidationError("give --runs or --seconds, not both") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func run() throws {
        let processStart = BenchClock.processStartSeconds()
        // OpenBLAS is loaded before the clock starts so that load time is the model's own.
        let blas = Model.blasInfo
        let loadStart = BenchClock.now()
        let model = try Model(
            contentsOf: URL(filePath: self.model),
            options: .init(
                threadCount: threads, splitBatches: !wholeBatch,
                batchTailBytes: batchTail ? GraphRunner.Options.recommendedBatchTailBytes : 0))
        let loadSeconds = BenchClock.now() - loadStart

        let feeds = try makeFeeds(model)
        let shapes = feeds.mapValues { $0.shape }

        let firstStart = BenchClock.now()
        _ = try model.run(feeds)
        let firstSeconds = BenchClock.now() - firstStart
        let firstResultSinceProcessStart = processStart.map { BenchClock.wallNow() - $0 }
        let firstLine = String(format: "first run: %.2f ms (includes planning)", firstSeconds * 1e3)
        if json {
            // Announced at once on stderr, so that a caller can time process start → first result.
            FileHandle.standardError.write(Data((firstLine + "\n").utf8))
        } else {
            print("model: \(self.model)")
            print(String(format: "load: %.2f ms", loadSeconds * 1e3))
            print(firstLine)
            fflush(nil)
        }

        // FLOPs for the report, after the first result so that it is not part of the cold start.
        let summary = try model.summary(inputShapes: shapes)

        // After the first run, which made the plans it needs (the batch-1 plan of a split batch
        // among them), so that "first run" includes all planning.
        let batchRefusal = try model.batchSplitRefusal(for: feeds)
        let batchTailCut = try model.batchTailCut(for: feeds)
        // The plan the first run made (a split batch's is the batch-1 plan, not asked for here).
        let single = feeds.values.allSatisfy { $0.shape.rank == 0 || $0.shape[0] == 1 }
        let prepacked = single || batchRefusal != nil ? try model.plan(for: feeds).prepackedConvolutionCount : nil
        if !json, let prepacked { print("convolutions reading prepacked weights: \(prepacked)") }
        for _ in 0..<warmup { _ = try model.run(feeds) }

        var latencies: [Double] = []
        let budget = seconds ?? (runs == nil ? 3 : .infinity)
        let measureStart = BenchClock.now()
        while true {
            if let runs, latencies.count >= runs { break }
            if runs == nil, latencies.count >= 3, BenchClock.now() - measureStart >= budget { break }
            let start = BenchClock.now()
            _ = try model.run(feeds)
            latencies.append(BenchClock.now() - start)
        }
        let stats = LatencyStats(latencies)

        var profileReport: ProfileReport?
        if profile {
            profileReport = try runProfile(
                model: model, feeds: feeds, summary: summary, iterations: max(3, latencies.count))
        }

        let report = BenchReport(
            model: self.model,
            inputShapes: shapes.mapValues { $0.dimensions },
            batch: batch,
            batchExecution: batchRefusal.map { "whole: \($0)" }
                ?? batchTailCut.map { "sample by sample up to node \($0), whole batch from there" }
                ?? "sample by sample",
            threads: model.threadCount,
            cpu: MachineInfo.cpuModel(),
            cpuFlags: MachineInfo.cpuFlagSummary(),
            openBLASCore: blas?.coreName,
            openBLASCoreSource: blas?.coreTypeSource.rawValue,
            loadMilliseconds: loadSeconds * 1e3,
            firstRunMilliseconds: firstSeconds * 1e3,
            prepackedConvolutions: prepacked,
            firstResultSinceProcessStartMilliseconds: firstResultSinceProcessStart.map { $0 * 1e3 },
            runs: latencies.count,
            warmup: warmup,
            latenciesMilliseconds: latencies.map { $0 * 1e3 },
            medianMilliseconds: stats.median * 1e3,
            meanMilliseconds: stats.mean * 1e3,
            p90Milliseconds: stats.percentile(0.90) * 1e3,
            p99Milliseconds: stats.percentile(0.99) * 1e3,
            minMilliseconds: stats.min * 1e3,
            maxMilliseconds: stats.max * 1e3,
            throughput: stats.median > 0 ? Double(batch) / stats.median : 0,
            peakRSSBytes: MachineInfo.peakRSSBytes(),
            gflop: Double(summary.flops) / 1e9,
            gflopsPerSecond: stats.median > 0 ? Double(summary.flops) / stats.median / 1e9 : 0,
            profile: profileReport)

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(report)
            print(String(decoding: data, as: UTF8.self))
        } else {
            printText(report)
        }
    }

    /// Seeded inputs of the declared shapes, or the given files.
    func makeFeeds(_ model: Model) throws -> [String: Tensor] {
        var feeds: [String: Tensor] = [:]
        for entry in inputFiles {
            guard let separator = entry.firstIndex(of: "=") else {
                throw ValidationError("--input expects NAME=FILE.npy, got '\(entry)'")
            }
            let name = String(entry[..<separator])
            let path = String(entry[entry.index(after: separator)...])
            feeds[name] = try Tensor(contentsOfNPY: URL(filePath: path))
        }
        var generator = SplitMix64(seed: 0x61_7075_73)
        for input in model.inputs where feeds[input.name] == nil {
            guard let dimensions = input.dimensions else {
                throw ValidationError(
                    "input '\(input.name)' has no declared shape; give it with --input \(input.name)=FILE.npy")
            }
            let dtype = input.dtype ?? .float32
            guard dtype == .float32 else {
                throw ValidationError("input '\(input.name)' is \(dtype); give it with --input \(input.name)=FILE.npy")
            }
            var sizes: [Int] = []
            for (axis, dimension) in dimensions.enumerated() {
                switch dimension {
                case .fixed(let size): sizes.append(size)
                case .symbolic(let name):
                    let lower = name.lowercased()
                    if axis == 0 || lower.contains("batch") || lower == "n" {
                        sizes.append(batch)
                    } else {
                        throw ValidationError(
                            "input '\(input.name)' has symbolic dimension '\(name)' at axis \(axis) whose size is unknown; give the input with --input \(input.name)=FILE.npy"
                        )
                    }
                }
            }
            let shape = Shape(sizes)
            let tensor = try Tensor(zeros: shape, dtype: .float32)
            tensor.withUnsafeMutableBufferPointer(as: Float.self) { buffer in
                for index in buffer.indices { buffer[index] = generator.nextSymmetricFloat() }
            }
            feeds[input.name] = tensor
        }
        return feeds
    }

    func runProfile(model: Model, feeds: [String: Tensor], summary: ModelSummary, iterations: Int) throws
        -> ProfileReport
    {
        let plan = try model.plan(for: feeds)
        let ordered = model.inputs.compactMap { feeds[$0.name] }
        var times: [UInt64] = []
        try plan.runProfiled(ordered, into: &times)  // warm
        times = []
        let start = BenchClock.now()
        for _ in 0..<iterations { try plan.runProfiled(ordered, into: &times) }
        let wall = (BenchClock.now() - start) / Double(iterations)

        let nodesByName = Dictionary(model.graph.nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var nodes: [ProfileReport.NodeTime] = []
        var byType: [String: (ms: Double, count: Int, flops: Int)] = [:]
        for (index, step) in plan.stepSummaries.enumerated() {
            let ms = index < times.count ? Double(times[index]) / Double(iterations) / 1e6 : 0
            // A step the planner joined from several nodes is named "a+b": the sum of theirs.
            let parts = step.node.split(separator: "+").map(String.init)
            let partFlops = parts.compactMap { summary.nodeFlops[$0] }
            let flops = summary.nodeFlops[step.node] ?? (partFlops.count == parts.count ? partFlops.reduce(0, +) : nil)
            var gemm: ProfileReport.GemmShape?
            if let node = nodesByName[step.node], step.opType.hasSuffix("Conv"), let flops,
                let output = step.outputShapes.first, output.rank == 4
            {
                gemm = convGemmShape(node: node, graph: model.graph, output: output, flops: flops)
            }
            nodes.append(
                .init(
                    index: index, node: step.node, opType: step.opType,
                    outputShape: step.outputShapes.first?.dimensions ?? [], milliseconds: ms,
                    flops: flops, gflopsPerSecond: flops.map { ms > 0 ? Double($0) / (ms * 1e-3) / 1e9 : 0 },
                    gemm: gemm))
            byType[step.opType, default: (0, 0, 0)].ms += ms
            byType[step.opType, default: (0, 0, 0)].count += 1
            byType[step.opType, default: (0, 0, 0)].flops += flops ?? 0
        }
        let total = nodes.reduce(0) { $0 + $1.milliseconds }
        let types = byType.map { key, value in
            ProfileReport.TypeTime(
                opType: key, count: value.count, milliseconds: value.ms,
                share: total > 0 ? value.ms / total : 0,
                gflopsPerSecond: value.flops > 0 && value.ms > 0 ? Double(value.flops) / (value.ms * 1e-3) / 1e9 : nil)
        }.sorted { $0.milliseconds > $1.milliseconds }
        return ProfileReport(
            iterations: iterations, wallMilliseconds: wall * 1e3, nodeSumMilliseconds: total, nodes: nodes,
            opTypes: types)
    }

    /// The GEMM a convolution amounts to: M output channels per group, N output positions, K the
    /// reduction (input channels per group × kernel area), from the weight's shape when known.
    func convGemmShape(node: Node, graph: Graph, output: Shape, flops: Int) -> ProfileReport.GemmShape? {
        let group = (try? node.int("group", default: 1)) ?? 1
        let positions = output[2] * output[3]
        let channels = output[1]
        guard positions > 0, channels > 0, output[0] > 0 else { return nil }
        let reduction = flops / (2 * output[0] * channels * positions)
        if node.inputs.count > 1, let weight = graph.initializers[node.inputs[1]], weight.shape.rank == 4 {
            return .init(
                m: channels / max(1, group), n: positions, k: weight.shape.dimensions.dropFirst().reduce(1, *),
                groups: group)
        }
        return .init(m: channels / max(1, group), n: positions, k: reduction, groups: group)
    }

    func printText(_ report: BenchReport) {
        print(
            "input: "
                + report.inputShapes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print("machine: \(report.cpu ?? "unknown CPU") [\(report.cpuFlags.joined(separator: " "))]")
        print("threads: \(report.threads)")
        if report.batch > 1 { print("batch execution: \(report.batchExecution)") }
        if let core = report.openBLASCore {
            print("OpenBLAS core: \(core) (\(report.openBLASCoreSource ?? "?"))")
        }
        print(
            String(
                format: "latency over %d runs: median %.3f ms, p90 %.3f, p99 %.3f, min %.3f, max %.3f, mean %.3f",
                report.runs, report.medianMilliseconds, report.p90Milliseconds, report.p99Milliseconds,
                report.minMilliseconds, report.maxMilliseconds, report.meanMilliseconds))
        print(String(format: "throughput: %.2f inferences/s (batch %d)", report.throughput, report.batch))
        print(String(format: "compute: %.3f GFLOP per run, %.1f GFLOP/s", report.gflop, report.gflopsPerSecond))
        print("peak RSS: \(formatBytes(report.peakRSSBytes))")
        guard let profile = report.profile else { return }
        print()
        print(
            String(
                format: "profile over %d runs: %.3f ms per run, of which %.3f ms inside operators",
                profile.iterations, profile.wallMilliseconds, profile.nodeSumMilliseconds))
        print("by operator type:")
        print("  op type                     count        ms   share   GFLOP/s")
        for type in profile.opTypes {
            let rate = type.gflopsPerSecond.map { String(format: "%9.1f", $0) } ?? "        -"
            print(
                "  " + type.opType.padding(toLength: 26, withPad: " ", startingAt: 0)
                    + String(format: " %6d %9.3f %6.1f%% ", type.count, type.milliseconds, type.share * 100) + rate)
        }
        print("slowest nodes:")
        print(
            "  #    op type          node                                           ms   share   GFLOP/s  GEMM M×N×K (groups)"
        )
        for node in profile.nodes.sorted(by: { $0.milliseconds > $1.milliseconds }).prefix(top) {
            let rate = node.gflopsPerSecond.map { String(format: "%9.1f", $0) } ?? "        -"
            let share = profile.nodeSumMilliseconds > 0 ? node.milliseconds / profile.nodeSumMilliseconds * 100 : 0
            var name = node.node
            if name.count > 44 { name = "…" + name.suffix(43) }
            let gemm = node.gemm.map { "  \($0.m)×\($0.n)×\($0.k)" + ($0.groups > 1 ? " (\($0.groups))" : "") } ?? ""
            print(
                String(format: "  %-4d ", node.index) + node.opType.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + " " + name.padding(toLength: 44, withPad: " ", startingAt: 0)
                    + String(format: " %8.3f %6.1f%% ", node.milliseconds, share) + rate + gemm)
        }
    }
}

/// Everything `apus bench --json` prints.
struct BenchReport: Codable {
    var model: String
    var inputShapes: [String: [Int]]
    var batch: Int
    /// "sample by sample" (the batch-1 plan per sample) or "whole: <why not split>".
    var batchExecution: String
    var threads: Int
    var cpu: String?
    var cpuFlags: [String]
    var openBLASCore: String?
    var openBLASCoreSource: String?
    var loadMilliseconds: Double
    var firstRunMilliseconds: Double
    /// Convolutions whose plans read weights prepacked into the artifact (not counted for a
    /// batch run sample by sample).
    var prepackedConvolutions: Int?
    /// From the kernel's record of the process start time to the end of the first run.
    var firstResultSinceProcessStartMilliseconds: Double?
    var runs: Int
    var warmup: Int
    /// Every measured run, in order.
    var latenciesMilliseconds: [Double]
    var medianMilliseconds: Double
    var meanMilliseconds: Double
    var p90Milliseconds: Double
    var p99Milliseconds: Double
    var minMilliseconds: Double
    var maxMilliseconds: Double
    /// Inferences per second: batch ÷ median latency.
    var throughput: Double
    var peakRSSBytes: Int
    /// Floating-point operations of one run (Conv, Gemm, MatMul), in 10⁹.
    var gflop: Double
    var gflopsPerSecond: Double
    var profile: ProfileReport?
}

/// Per-node and per-operator-type times of `apus bench --profile`.
struct ProfileReport: Codable {
    struct GemmShape: Codable {
        var m: Int
        var n: Int
        var k: Int
        var groups: Int
    }
    struct NodeTime: Codable {
        var index: Int
        var node: String
        var opType: String
        var outputShape: [Int]
        var milliseconds: Double
        var flops: Int?
        var gflopsPerSecond: Double?
        var gemm: GemmShape?
    }
    struct TypeTime: Codable {
        var opType: String
        var count: Int
        var milliseconds: Double
        var share: Double
        var gflopsPerSecond: Double?
    }
    var iterations: Int
    /// Wall time of one profiled run.
    var wallMilliseconds: Double
    /// Sum of the per-node times of one run.
    var nodeSumMilliseconds: Double
    var nodes: [NodeTime]
    var opTypes: [TypeTime]
}

/// Order statistics of a list of latencies (seconds).
struct LatencyStats {
    let sorted: [Double]

    init(_ values: [Double]) { sorted = values.sorted() }

    var min: Double { sorted.first ?? 0 }
    var max: Double { sorted.last ?? 0 }
    var mean: Double { sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count) }
    var median: Double {
        if sorted.isEmpty { return 0 }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Nearest-rank percentile, `q` in 0...1.
    func percentile(_ q: Double) -> Double {
        if sorted.isEmpty { return 0 }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[Swift.min(sorted.count - 1, Swift.max(0, rank - 1))]
    }
}

enum BenchClock {
    /// Monotonic seconds.
    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
    }

    /// Wall-clock seconds since the epoch.
    static func wallNow() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
    }

    /// When this process started (wall-clock seconds), from /proc; `nil` where unavailable.
    static func processStartSeconds() -> Double? {
        #if os(Linux)
            guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
                let uptimeText = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            // Fields after the command name; starttime is field 22 overall, the 20th after ")".
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 19, let ticks = Double(fields[19]),
                let uptime = uptimeText.split(separator: " ").first.flatMap({ Double($0) })
            else { return nil }
            let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
            guard hz > 0 else { return nil }
            let bootWall = wallNow() - uptime
            return bootWall + ticks / hz
        #else
            return nil
        #endif
    }
}

enum MachineInfo {
    /// `model name` of the first CPU in /proc/cpuinfo.
    static func cpuModel() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// The vector-extension flags of the CPU that matter for these kernels.
    static func cpuFlagSummary() -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
            let colon = line.firstIndex(of: ":")
        else { return [] }
        let flags = Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        let interesting = [
            "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
            "avx512_fp16", "amx_tile", "amx_bf16",
        ]
        return interesting.filter { flags.contains($0) }
    }

    /// Peak resident set size of this process: `VmHWM` of /proc/self/status where there is one
    /// (`getrusage`'s ru_maxrss keeps the high-water mark of the process image before `exec`, so
    /// a process spawned by a large parent would report the parent's size), else ru_maxrss.
    static func peakRSSBytes() -> Int {
        if let kilobytes = procStatusKilobytes("VmHWM") { return kilobytes * 1024 }
        var usage = rusage()
        #if os(Linux)
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return Int(usage.ru_maxrss) * 1024
        #else
            getrusage(RUSAGE_SELF, &usage)
            return Int(usage.ru_maxrss)
        #endif
    }
}

/// A small deterministic generator, so every run benchmarks the same input.
struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    mutating func nextSymmetricFloat() -> Float {
        Float(next() >> 40) / Float(1 << 24) * 2 - 1
    }
}
