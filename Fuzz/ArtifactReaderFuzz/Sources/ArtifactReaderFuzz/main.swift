// libFuzzer entry points for ArtifactReader. Built with `-sanitize=fuzzer,address
// -parse-as-library` (libFuzzer supplies `main`); see scripts/fuzz-artifact.sh.
//
// Oracle: any input may be refused with an ArtifactError (a pass). An input the reader accepts
// must survive a rewrite: the writer must encode it, the reader must accept that encoding, and
// encoding again must give the same bytes. Anything else traps, which libFuzzer reports.
import ApusGraph
import ApusTensor
import CFuzzerDriver
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `APUS_FUZZ_EXPLAIN=1`: print why each input was refused (run the binary on single files).
let explain = ProcessInfo.processInfo.environment["APUS_FUZZ_EXPLAIN"] != nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let data = count > 0 && start != nil ? Data(bytes: start.unsafelyUnwrapped, count: count) : Data()
    let artifact: Artifact
    do {
        artifact = try ArtifactReader.read(data: data, options: .init(verifyChecksum: true))
    } catch {
        let description = error.description  // error descriptions must not trap either
        if explain { printError("refused: \(description)\n") }
        return 0
    }
    if explain { printError("accepted: \(artifact.graph.nodes.count) nodes, \(artifact.goldens.count) goldens\n") }
    do {
        let first = try ArtifactWriter.encodedData(ArtifactContents(artifact))
        let reread = try ArtifactReader.read(data: first, options: .init(verifyChecksum: true))
        let second = try ArtifactWriter.encodedData(ArtifactContents(reread))
        if first != second {
            printError("rewrite is not stable (\(first.count) vs \(second.count) bytes)\n")
            abort()
        }
    } catch {
        printError("accepted file does not survive a rewrite: \(error)\n")
        abort()
    }
    return 0
}

/// The process entry point. SwiftPM links an executable target's entry point under this name as
/// `main` (which keeps libFuzzer's own `main` out), so it starts libFuzzer's driver itself.
///
/// With `APUS_FUZZ_WRITE_SEEDS=<folder>`, writes a few small valid artifacts there instead and exits.
@_cdecl("ArtifactReaderFuzz_main")
public func entryPoint(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    if let folder = ProcessInfo.processInfo.environment["APUS_FUZZ_WRITE_SEEDS"] {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let seeds = Seeds.all()
            for (name, contents) in seeds {
                try ArtifactWriter.write(contents, to: URL(fileURLWithPath: folder).appendingPathComponent(name))
            }
            print("wrote \(seeds.count) seed artifacts to \(folder)")
            return 0
        } catch {
            printError("could not write seeds: \(error)\n")
            return 1
        }
    }
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in
        fuzz(UnsafeRawPointer(data), size)
    }
}

enum Seeds {
    static func all() -> [(String, ArtifactContents)] {
        let w = Tensor(shape: [2], scalars: [Float(1.5), -2])
        let b = Tensor(shape: [2], scalars: [Float(0.25), 4])
        let small = Graph(
            name: "affine",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(2)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(2)])],
            nodes: [
                Node(name: "mul", opType: "Mul", inputs: ["x", "w"], outputs: ["t"]),
                Node(name: "add", opType: "Add", inputs: ["t", "b"], outputs: ["y"]),
            ],
            initializers: ["w": w, "b": b], opsetImports: ["": 18])
        let golden = GoldenExample(
            inputs: ["x": Tensor(shape: [1, 2], scalars: [Float(2), 3])],
            outputs: ["y": Tensor(shape: [1, 2], scalars: [Float(3.25), -2])], tolerance: (1e-4, 1e-5),
            source: "apus")
        let allKinds = Node(
            name: "conv", opType: "Conv", inputs: ["x", "w", ""], outputs: ["c"],
            attributes: [
                "group": .int(1), "alpha": .float(0.5), "mode": .string("constant"), "strides": .ints([2, 2]),
                "params": .floats([0, 6]), "names": .strings(["a", "b"]),
                "value": .tensor(Tensor(shape: [], scalars: [Int64(7)])),
                "values": .tensors([
                    Tensor(shape: [3], scalars: [UInt8(1), 2, 3]), Tensor(shape: [0], scalars: [Bool]()),
                ]),
            ])
        var rich = small
        rich.nodes.append(allKinds)
        rich.outputs.append(ValueInfo(name: "c", dtype: nil, dimensions: nil))
        rich.initializers["e"] = Tensor(shape: [0, 4], scalars: [Float]())
        rich.initializers["h"] = Tensor(shape: [3], scalars: [Int32(-1), 0, 1])
        rich.initializers["q"] = Tensor(shape: [2, 2], scalars: [Int8(-128), 127, 0, 1])
        rich.opsetImports["ai.apus"] = 1
        let preprocess = Data(
            #"{"steps":[{"op":"resize","size":[256],"interpolation":"bilinear","antialias":true},{"op":"center_crop","size":[224]},{"op":"pil_to_tensor"},{"op":"normalize","mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}]}"#
                .utf8)
        return [
            ("empty.apus", ArtifactContents(graph: Graph())),
            ("affine.apus", ArtifactContents(graph: small)),
            (
                "affine-golden.apus",
                ArtifactContents(
                    graph: small, preprocessJSON: preprocess, labels: ["left", "right"], outputKind: "logits",
                    goldens: [golden], metadata: ["producer": "fuzz seeds"])
            ),
            ("all-kinds.apus", ArtifactContents(graph: rich, metadata: ["a": "b"])),
        ]
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}
