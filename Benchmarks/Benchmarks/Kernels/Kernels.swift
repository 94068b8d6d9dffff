import ApusOps
import ApusTensor
import Benchmark

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Micro-benchmarks of the kernels the planner uses, at the shapes ResNet-50 and MobileNetV2
// give them. Besides time and mallocs per iteration, every benchmark reports its own throughput
// as a custom metric: "MFLOP/s" for compute-bound kernels (multiply-add = 2 FLOPs) and "MB/s"
// (bytes read + written) for memory-bound ones. The FLOPs or bytes of one iteration are also in
// the benchmark's tags, so any time metric converts to throughput.

/// Throughput of one iteration, in 10⁶ FLOP/s.
let megaflopsPerSecond = BenchmarkMetric.custom("MFLOP/s", polarity: .prefersLarger, useScalingFactor: false)
/// Throughput of one iteration, in 10⁶ bytes/s moved to or from memory.
let megabytesPerSecond = BenchmarkMetric.custom("MB/s", polarity: .prefersLarger, useScalingFactor: false)

/// A buffer of seeded floats that lives for the whole benchmark process.
final class Buffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int, seed: UInt64) {
        self.count = max(1, count)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: self.count * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: self.count)
        var state = seed | 1
        for index in 0..<self.count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            pointer[index] = Float(Int64(bitPattern: state >> 40) - (1 << 23)) / Float(1 << 23)
        }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// Buffers made on first use (in the measured process only, before measurement starts).
final class Lazy<Value>: @unchecked Sendable {
    private var value: Value?
    private let make: () -> Value
    init(_ make: @escaping () -> Value) { self.make = make }
    var get: Value {
        if let value { return value }
        let made = make()
        value = made
        return made
    }
}

@inline(__always)
func seconds(_ body: () -> Void) -> Double {
    var start = timespec()
    var end = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    body()
    clock_gettime(CLOCK_MONOTONIC, &end)
    return Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) * 1e-9
}

func report(_ benchmark: Benchmark, flops: Int? = nil, bytes: Int? = nil, seconds elapsed: Double) {
    guard elapsed > 0 else { return }
    if let flops { benchmark.measurement(megaflopsPerSecond, Int(Double(flops) / elapsed / 1e6)) }
    if let bytes { benchmark.measurement(megabytesPerSecond, Int(Double(bytes) / elapsed / 1e6)) }
}

/// The GEMMs ResNet-50's convolutions amount to: M output channels, N = H×W output positions,
/// K = Cin×kh×kw.
let resnet50GemmShapes: [(m: Int, n: Int, k: Int)] = [
    (64, 12544, 147),  // stem 7×7 s2 (N = 112×112)
    (64, 3136, 64), (64, 3136, 576), (256, 3136, 64),
    (128, 784, 1152), (512, 784, 128),
    (256, 196, 2304), (1024, 196, 256),
    (512, 49, 4608), (2048, 49, 512),
]

/// Convolutions of ResNet-50 (im2col and pointwise paths) and MobileNetV2 (depthwise).
struct ConvCase {
    var name: String
    var geometry: Conv2DGeometry
}

func conv(
    _ name: String, c: Int, hw: Int, m: Int, k: Int, stride: Int = 1, groups: Int = 1
) -> ConvCase {
    let pad = k / 2
    return ConvCase(
        name: name,
        geometry: Conv2DGeometry(
            batch: 1, inputChannels: c, inputHeight: hw, inputWidth: hw, outputChannels: m, groups: groups,
            kernelHeight: k, kernelWidth: k, strideHeight: stride, strideWidth: stride, padTop: pad, padLeft: pad,
            padBottom: pad, padRight: pad))
}

let convCases: [ConvCase] = [
    conv("im2col 7x7s2 3->64 @224", c: 3, hw: 224, m: 64, k: 7, stride: 2),
    conv("im2col 3x3 64->64 @56", c: 64, hw: 56, m: 64, k: 3),
    conv("im2col 3x3 128->128 @28", c: 128, hw: 28, m: 128, k: 3),
    conv("im2col 3x3 256->256 @14", c: 256, hw: 14, m: 256, k: 3),
    conv("im2col 3x3 512->512 @7", c: 512, hw: 7, m: 512, k: 3),
    conv("pointwise 64->64 @56", c: 64, hw: 56, m: 64, k: 1),
    conv("pointwise 64->256 @56", c: 64, hw: 56, m: 256, k: 1),
    conv("pointwise 128->512 @28", c: 128, hw: 28, m: 512, k: 1),
    conv("pointwise 256->1024 @14", c: 256, hw: 14, m: 1024, k: 1),
    conv("pointwise 512->2048 @7", c: 512, hw: 7, m: 2048, k: 1),
    conv("depthwise 3x3 32 @112", c: 32, hw: 112, m: 32, k: 3, groups: 32),
    conv("depthwise 3x3s2 96 @112", c: 96, hw: 112, m: 96, k: 3, stride: 2, groups: 96),
    conv("depthwise 3x3 144 @56", c: 144, hw: 56, m: 144, k: 3, groups: 144),
    conv("depthwise 3x3 192 @28", c: 192, hw: 28, m: 192, k: 3, groups: 192),
    conv("depthwise 3x3 384 @14", c: 384, hw: 14, m: 384, k: 3, groups: 384),
    conv("depthwise 3x3 576 @14", c: 576, hw: 14, m: 576, k: 3, groups: 576),
    conv("depthwise 3x3 960 @7", c: 960, hw: 7, m: 960, k: 3, groups: 960),
]

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal, megaflopsPerSecond, megabytesPerSecond],
        timeUnits: .microseconds, warmupIterations: 3, maxDuration: .seconds(2), maxIterations: 1000)

    // The OpenBLAS core goes into the sgemm rows' tags: a preset OPENBLAS_CORETYPE wins over
    // Apus's choice, and these machines' environment may preset a slower one.
    let blasCore: String
    do {
        blasCore = try BLAS.load().coreName
    } catch {
        print("skipping the kernel benchmarks: \(error)")
        return
    }

    // The harness's own cost per iteration: mallocs and time of an empty measured region, to
    // subtract from the rows below.
    Benchmark("baseline (empty iteration)") { benchmark in
        benchmark.startMeasurement()
        let elapsed = seconds {}
        benchmark.stopMeasurement()
        blackHole(elapsed)
    }

    // OpenBLAS sgemm, single-threaded as Apus runs it: the reference the convolutions are held to.
    for shape in resnet50GemmShapes {
        let flops = 2 * shape.m * shape.n * shape.k
        let data = Lazy {
            (
                Buffer(count: shape.m * shape.k, seed: 1), Buffer(count: shape.k * shape.n, seed: 2),
                Buffer(count: shape.m * shape.n, seed: 3)
            )
        }
        Benchmark(
            "sgemm \(shape.m)x\(shape.n)x\(shape.k)",
            configuration: .init(tags: ["flops": "\(flops)", "core": blasCore])
        ) { benchmark in
            let (a, b, c) = data.get
            benchmark.startMeasurement()
            let elapsed = seconds {
                BLAS.sgemm(
                    transposeA: false, transposeB: false, m: shape.m, n: shape.n, k: shape.k, alpha: 1,
                    a: a.pointer, lda: shape.k, b: b.pointer, ldb: shape.n, beta: 0, c: c.pointer, ldc: shape.n)
            }
            benchmark.stopMeasurement()
            report(benchmark, flops: flops, seconds: elapsed)
        }
    }

    // Convolutions through Conv2DPlan, with the fused bias + ReLU epilogue, on 1 and 2 threads.
    for item in convCases {
        let g = item.geometry
        let flops = 2 * g.batch * g.outputChannels * g.outputHeight * g.outputWidth * g.reductionLength
        for threads in [1, 2] {
            let plan = Conv2DPlan(geometry: g)
            let data = Lazy {
                (
                    input: Buffer(count: g.batch * g.inputChannels * g.inputHeight * g.inputWidth, seed: 4),
                    weights: Buffer(count: g.outputChannels * g.reductionLength, seed: 5),
                    bias: Buffer(count: g.outputChannels, seed: 6),
                    output: Buffer(count: g.batch * g.outputChannels * g.outputHeight * g.outputWidth, seed: 7),
                    workspace: Buffer(count: plan.workspaceByteCount(threadCount: threads) / 4 + 16, seed: 8)
                )
            }
            Benchmark(
                "conv \(item.name)",
                configuration: .init(tags: ["threads": "\(threads)", "flops": "\(flops)"])
            ) { benchmark in
                let d = data.get
                let context = ComputeContext(
                    threadCount: threads, workspace: UnsafeMutableRawPointer(d.workspace.pointer),
                    workspaceByteCount: d.workspace.count * 4)
                benchmark.startMeasurement()
                let elapsed = seconds {
                    plan.run(
                        input: d.input.pointer, weights: d.weights.pointer, bias: d.bias.pointer, residual: nil,
                        output: d.output.pointer, activation: .relu, context: context)
                }
                benchmark.stopMeasurement()
                report(benchmark, flops: flops, seconds: elapsed)
            }
        }
    }

    // Memory-bound kernels on a ResNet-sized activation.
    let activationCount = 1 * 64 * 56 * 56
    let elementwise = Lazy {
        (
            Buffer(count: activationCount, seed: 9), Buffer(count: activationCount, seed: 10),
            Buffer(count: activationCount, seed: 11)
        )
    }
    for threads in [1, 2] {
        let layout = BroadcastLayout(operandDimensions: [[1, 64, 56, 56], [1, 64, 56, 56]])
        Benchmark(
            "add 1x64x56x56",
            configuration: .init(tags: ["threads": "\(threads)", "bytes": "\(3 * activationCount * 4)"])
        ) { benchmark in
            let (a, b, c) = elementwise.get
            guard let layout else { return }
            let context = ComputeContext(threadCount: threads)
            benchmark.startMeasurement()
            let elapsed = seconds {
                binaryFloat32(.add, a.pointer, b.pointer, output: c.pointer, layout: layout, context: context)
            }
            benchmark.stopMeasurement()
            report(benchmark, bytes: 3 * activationCount * 4, seconds: elapsed)
        }
        Benchmark(
            "relu 1x64x56x56",
            configuration: .init(tags: ["threads": "\(threads)", "bytes": "\(2 * activationCount * 4)"])
        ) { benchmark in
            let (a, _, c) = elementwise.get
            let context = ComputeContext(threadCount: threads)
            benchmark.startMeasurement()
            let elapsed = seconds {
                unaryFloat32(.relu, a.pointer, output: c.pointer, count: activationCount, context: context)
            }
            benchmark.stopMeasurement()
            report(benchmark, bytes: 2 * activationCount * 4, seconds: elapsed)
        }

        let pool = Pool2DGeometry(
            batch: 1, channels: 64, inputHeight: 112, inputWidth: 112, outputHeight: 56, outputWidth: 56,
            kernelHeight: 3, kernelWidth: 3, strideHeight: 2, strideWidth: 2, padTop: 1, padLeft: 1, padBottom: 1,
            padRight: 1)
        let poolBytes = (64 * 112 * 112 + 64 * 56 * 56) * 4
        let poolData = Lazy { (Buffer(count: 64 * 112 * 112, seed: 12), Buffer(count: 64 * 56 * 56, seed: 13)) }
        Benchmark(
            "maxpool 3x3s2 1x64x112x112",
            configuration: .init(tags: ["threads": "\(threads)", "bytes": "\(poolBytes)"])
        ) { benchmark in
            let (input, output) = poolData.get
            let context = ComputeContext(threadCount: threads)
            benchmark.startMeasurement()
            let elapsed = seconds {
                Pool2D.run(.max, geometry: pool, input: input.pointer, output: output.pointer, context: context)
            }
            benchmark.stopMeasurement()
            report(benchmark, bytes: poolBytes, seconds: elapsed)
        }
    }
}
