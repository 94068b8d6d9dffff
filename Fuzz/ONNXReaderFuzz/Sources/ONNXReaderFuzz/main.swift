// libFuzzer entry points for the ONNX reader. Built with `-sanitize=fuzzer,address
// -parse-as-library` (libFuzzer supplies the driver); see scripts/fuzz-onnx.sh.
//
// Every input is tried both as a `ModelProto` and as a `TensorProto`. A model that parses is also
// validated, optimized and given operators by `GraphRunner(graph:)`; a small one (≤ 50 nodes, every
// input of a declared dtype and a fixed shape of ≤ 4096 elements) is then planned under a 64 MB
// memory budget and run once on zeros, which drives shape inference, constant folding and kernels
// with hostile attributes and shapes. Any thrown error is a pass: only a trap, an ASan report, a
// hang or an allocation above libFuzzer's limits fails.
import ApusGraph
import ApusTensor
import CFuzzerDriver
import Foundation

/// `APUS_FUZZ_EXPLAIN=1`: print what happened to each input (run the binary on single files).
let explain = ProcessInfo.processInfo.environment["APUS_FUZZ_EXPLAIN"] != nil

/// Graphs with more nodes are only loaded, not run (keeps each execution fast).
let maxRunNodes = 50
/// Largest element count of one zero-filled graph input.
let maxInputElements = 4096
/// Runner settings: one thread (the fuzzer runs with `-jobs 1` on a shared machine) and a 64 MB
/// budget for the arena, workspace and constants folded at plan time.
let runnerOptions = GraphRunner.Options(plan: PlanOptions(threadCount: 1, memoryBudget: 64 << 20), maxCachedPlans: 1)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let data = count > 0 && start != nil ? Data(bytes: start.unsafelyUnwrapped, count: count) : Data()
    do {
        let tensor = try ONNXReader.readTensor(data: data)
        if explain { printError("tensor: \(tensor.dtype) \(tensor.shape.dimensions)\n") }
    } catch {
        let description = error.description  // error descriptions must not trap either
        if explain { printError("not a tensor: \(description)\n") }
    }
    let graph: Graph
    do {
        graph = try ONNXReader.read(data: data, baseDirectory: nil, options: .init())
    } catch {
        let description = error.description
        if explain { printError("not a model: \(description)\n") }
        return 0
    }
    if explain { printError("model: \(graph.nodes.count) nodes, \(graph.inputs.count) inputs\n") }
    let runner: GraphRunner
    do {
        runner = try GraphRunner(graph: graph, options: runnerOptions)
    } catch {
        let description = error.description
        if explain { printError("refused by the runner: \(description)\n") }
        return 0
    }
    guard runner.graph.nodes.count <= maxRunNodes, let inputs = zeroInputs(for: runner.graph) else {
        if explain { printError("not run (too many nodes or inputs without a small fixed shape)\n") }
        return 0
    }
    do {
        let outputs = try runner.run(inputs)
        if explain {
            let shapes = outputs.map { "\($0.key): \($0.value.dtype) \($0.value.shape.dimensions)" }
            printError("ran: \(shapes.sorted().joined(separator: ", "))\n")
        }
    } catch {
        let description = error.description
        if explain { printError("run failed: \(description)\n") }
    }
    return 0
}

/// Zero-filled inputs of the declared dtypes and shapes, or `nil` when an input has no dtype, an
/// unknown rank, a symbolic dimension or more than `maxInputElements` elements.
func zeroInputs(for graph: Graph) -> [String: Tensor]? {
    var inputs: [String: Tensor] = [:]
    for info in graph.inputs {
        guard let dtype = info.dtype, let dimensions = info.dimensions else { return nil }
        var sizes: [Int] = []
        var elements = 1
        for dimension in dimensions {
            guard case .fixed(let size) = dimension, size >= 0 else { return nil }
            let (product, overflow) = elements.multipliedReportingOverflow(by: size)
            guard !overflow, product <= maxInputElements else { return nil }
            elements = product
            sizes.append(size)
        }
        guard let shape = try? Shape(validating: sizes), let tensor = try? Tensor(zeros: shape, dtype: dtype) else {
            return nil
        }
        inputs[info.name] = tensor
    }
    return inputs
}

/// The process entry point. SwiftPM links an executable target's entry point under this name as
/// `main` (which keeps libFuzzer's own `main` out), so it starts libFuzzer's driver itself.
@_cdecl("ONNXReaderFuzz_main")
public func entryPoint(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in
        fuzz(UnsafeRawPointer(data), size)
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}
