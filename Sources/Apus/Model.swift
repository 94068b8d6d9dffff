import ApusGraph
import ApusOps
import ApusPreprocess
import ApusTensor
import Foundation

/// A model loaded once and served many times: the graph, validated and optimized, with its plans.
///
/// A `Model` is immutable and `Sendable`: share one instance between threads and call
/// ``run(_:)`` concurrently; each call borrows its own arena from a bounded pool.
///
/// ```swift
/// let model = try Model(contentsOf: URL(filePath: "resnet50.onnx"))
/// let outputs = try model.run(["input": Tensor(shape: [1, 3, 224, 224], scalars: pixels)])
/// ```
public final class Model: Sendable {
    /// Load and run settings.
    public struct Options: Sendable {
        /// Intra-op threads; `nil` uses the CPUs this process may really use (affinity mask and
        /// cgroup quota), see ``CPUAvailability``.
        public var threadCount: Int?
        /// Upper bound for one plan's arena, workspace and folded constants, in bytes.
        public var memoryBudget: Int
        /// At most this many runs of one plan at once; more callers wait.
        public var maxConcurrentRuns: Int
        /// Plans kept for distinct input-shape signatures.
        public var maxCachedPlans: Int
        /// Whether to optimize the graph (fold BatchNorm, fuse activations) at load.
        public var optimize: Bool
        /// What an `.apus` file must prove at load.
        public var verify: Verification
        /// Whether a batch may run sample by sample on the batch-1 plan when the graph computes
        /// every sample on its own (faster at batch 8 and up, smaller arena, and each sample's
        /// result bitwise equal to running it alone); see ``BatchSplitRule``.
        public var splitBatches: Bool
        /// With ``splitBatches``, the whole-batch bytes under which the values after some point
        /// of the graph must all stay for the graph's end to run on the whole batch at once (its
        /// late layers as wide products: more throughput, but samples only equal within rounding
        /// to running alone; see ``GraphRunner/Options/batchTailBytes`` and its
        /// `recommendedBatchTailBytes`). 0, the default, runs every layer sample by sample.
        public var batchTailBytes: Int

        /// Checks an `.apus` artifact proves about itself at load.
        public struct Verification: OptionSet, Sendable {
            public let rawValue: Int
            public init(rawValue: Int) { self.rawValue = rawValue }
            /// The SHA-256 of the data section matches the header.
            public static let checksum = Verification(rawValue: 1)
            /// Every golden example reproduces its stored outputs within its tolerance.
            public static let golden = Verification(rawValue: 2)
            /// Both.
            public static let all: Verification = [.checksum, .golden]
        }

        public init(
            threadCount: Int? = nil, memoryBudget: Int = 16 << 30, maxConcurrentRuns: Int = 4,
            maxCachedPlans: Int = 8, optimize: Bool = true, verify: Verification = [], splitBatches: Bool = true,
            batchTailBytes: Int = 0
        ) {
            self.verify = verify
            self.splitBatches = splitBatches
            self.batchTailBytes = batchTailBytes
            self.threadCount = threadCount
            self.memoryBudget = memoryBudget
            self.maxConcurrentRuns = maxConcurrentRuns
            self.maxCachedPlans = maxCachedPlans
            self.optimize = optimize
        }
    }

    /// The graph as it runs.
    public var graph: Graph { runner.graph }
    /// Declared inputs.
    public var inputs: [ValueInfo] { runner.graph.inputs }
    /// Declared outputs.
    public var outputs: [ValueInfo] { runner.graph.outputs }
    /// Intra-op threads in use.
    public let threadCount: Int
    /// Where the model was loaded from.
    public let url: URL?
    /// The image preprocessing the model was validated with, when known.
    public let preprocessing: PreprocessSpec?
    /// Class names, one per output column, when known.
    public let labels: [String]?
    /// Example inputs with reference outputs stored in the artifact (empty for ONNX files).
    public let goldens: [GoldenExample]
    /// The artifact's metadata (producer, versions, source model, …); empty for ONNX files.
    public let metadata: [String: String]
    /// Whether the first output holds logits (``classify(imageData:top:)`` applies softmax) or
    /// probabilities.
    public let outputKind: OutputKind
    let runner: GraphRunner

    /// What a classifier's output holds.
    public enum OutputKind: String, Sendable {
        /// Unnormalized scores: ``Model/classify(imageData:top:)`` applies softmax.
        case logits
        /// Probabilities, used as they are.
        case probabilities
    }

    /// Loads a model file: an `.apus` artifact (memory-mapped; its preprocessing, labels and
    /// goldens come with it) or an `.onnx` file (with external data beside it).
    ///
    /// - Parameters:
    ///   - preprocessing: the image pipeline for ``classify(imageData:top:source:)``; overrides the artifact's.
    ///   - labels: class names; override the artifact's.
    ///   - outputKind: whether the first output is logits or probabilities; overrides the artifact's.
    /// - Throws: ``ModelError`` saying what is wrong and where.
    public convenience init(
        contentsOf url: URL, preprocessing: PreprocessSpec? = nil, labels: [String]? = nil,
        outputKind: OutputKind? = nil, options: Options = .init()
    ) throws(ModelError) {
        // OpenBLAS loads on another core while this one reads the file.
        BLAS.loadInBackground()
        if Self.isArtifact(url) {
            let artifact: Artifact
            do {
                var readOptions = ArtifactReader.Options()
                readOptions.verifyChecksum = options.verify.contains(.checksum)
                artifact = try ArtifactReader.read(contentsOf: url, options: readOptions)
            } catch {
                throw .artifact(url.path, error)
            }
            var spec = preprocessing
            if spec == nil, let json = artifact.preprocessJSON {
                do {
                    spec = try JSONDecoder().decode(PreprocessSpec.self, from: json)
                } catch {
                    throw .io(url.path, "invalid preprocess spec: \(error)")
                }
            }
            let kind = outputKind ?? OutputKind(rawValue: artifact.outputKind ?? "logits") ?? .logits
            var graph = artifact.graph
            if artifact.float16Weights { graph = try Self.upcastFloat16Initializers(graph) }
            try self.init(
                graph: graph, preprocessing: spec, labels: labels ?? artifact.labels, outputKind: kind,
                goldens: artifact.goldens, metadata: artifact.metadata, options: options, url: url)
            if options.verify.contains(.golden) {
                for report in try verifyGoldens() where !report.passed {
                    throw .goldenMismatch(report)
                }
            }
        } else {
            let graph: Graph
            do {
                graph = try ONNXReader.read(contentsOf: url)
            } catch {
                throw .onnx(url.path, error)
            }
            try self.init(
                graph: graph, preprocessing: preprocessing, labels: labels, outputKind: outputKind ?? .logits,
                options: options, url: url)
        }
    }

    /// Whether the file starts with the `.apus` magic.
    static func isArtifact(_ url: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("APUS".utf8)
    }

    /// Converts float16-stored weights back to float32 (the `float16_weights` artifact option).
    ///
    /// - Throws: ``ModelError/io(_:_:)`` naming the tensor when memory cannot be allocated.
    public static func upcastFloat16Initializers(_ graph: Graph) throws(ModelError) -> Graph {
        var graph = graph
        for (name, tensor) in graph.initializers where tensor.dtype == .float16 {
            do {
                let converted = try Tensor(zeros: tensor.shape, dtype: .float32)
                convertFloat16ToFloat32(
                    tensor.rawPointer.assumingMemoryBound(to: UInt16.self), converted.pointer(as: Float.self),
                    count: tensor.elementCount)
                graph.initializers[name] = converted
            } catch {
                throw .io(name, "cannot convert float16 weights: \(error)")
            }
        }
        return graph
    }

    /// Prepares an in-memory graph.
    ///
    /// - Throws: ``ModelError/graph(_:)`` for invalid graphs or unsupported operators.
    public init(
        graph: Graph, preprocessing: PreprocessSpec? = nil, labels: [String]? = nil, outputKind: OutputKind = .logits,
        goldens: [GoldenExample] = [], metadata: [String: String] = [:], options: Options = .init(), url: URL? = nil
    ) throws(ModelError) {
        self.goldens = goldens
        self.metadata = metadata
        self.preprocessing = preprocessing
        self.labels = labels
        self.outputKind = outputKind
        let threads = options.threadCount.map { max(1, $0) } ?? CPUAvailability.usableCPUCount()
        let planOptions = PlanOptions(
            threadCount: threads, memoryBudget: options.memoryBudget, maxConcurrentRuns: options.maxConcurrentRuns)
        do {
            runner = try GraphRunner(
                graph: graph,
                options: .init(
                    plan: planOptions, maxCachedPlans: options.maxCachedPlans, optimize: options.optimize,
                    splitBatches: options.splitBatches, batchTailBytes: options.batchTailBytes))
        } catch {
            throw .graph(error)
        }
        self.threadCount = threads
        self.url = url
    }

    /// Runs the model on named inputs and returns every output by name.
    ///
    /// - Throws: ``ModelError/graph(_:)`` for unknown, missing or mis-shaped inputs and for
    ///   failures of a node (naming it).
    public func run(_ inputs: [String: Tensor]) throws(ModelError) -> [String: Tensor] {
        do {
            return try runner.run(inputs)
        } catch {
            throw .graph(error)
        }
    }

    /// Runs the model on named inputs and writes every output into `outputs`, reusing what is
    /// there: the allocation-free way to serve a stream of same-shaped requests.
    ///
    /// An output already in `outputs` under its name, with the shape and dtype this run produces,
    /// is overwritten in place — every copy of that tensor sees the new values, so hand out a
    /// `copy()` if results must outlive the next run. Missing or differently shaped outputs are
    /// replaced by fresh tensors. Once the plan for the input shapes exists and `outputs` holds the
    /// previous results, a run allocates nothing.
    ///
    /// ```swift
    /// var outputs: [String: Tensor] = [:]
    /// for frame in frames {
    ///     try model.run(["input": frame], into: &outputs)
    ///     consume(outputs["logits"])
    /// }
    /// ```
    ///
    /// - Throws: ``ModelError/graph(_:)`` for unknown, missing or mis-shaped inputs and for
    ///   failures of a node (naming it).
    public func run(_ inputs: [String: Tensor], into outputs: inout [String: Tensor]) throws(ModelError) {
        do {
            try runner.run(inputs, into: &outputs)
        } catch {
            throw .graph(error)
        }
    }

    /// Why a batch of these inputs runs whole rather than sample by sample on the batch-1 plan,
    /// or `nil` when it is split (see ``Options/splitBatches``).
    public func batchSplitRefusal(for inputs: [String: Tensor]) throws(ModelError) -> String? {
        do {
            return try runner.batchSplitRefusal(for: inputs)
        } catch {
            throw .graph(error)
        }
    }

    /// The first node that runs on the whole batch when a batch of these inputs runs sample by
    /// sample up to there (see ``GraphRunner/Options/batchTailBytes``), or `nil`.
    public func batchTailCut(for inputs: [String: Tensor]) throws(ModelError) -> String? {
        do {
            return try runner.batchTailCut(for: inputs)
        } catch {
            throw .graph(error)
        }
    }

    /// The execution plan for inputs of these shapes (made and cached on first use).
    public func plan(for inputs: [String: Tensor]) throws(ModelError) -> ExecutionPlan {
        do {
            return try runner.plan(for: runner.orderedInputs(inputs))
        } catch {
            throw .graph(error)
        }
    }

    /// Facts about OpenBLAS as loaded (core type in use and how it was chosen).
    public static var blasInfo: BLAS.Info? { try? BLAS.load() }
}

/// Errors of loading and running a ``Model``.
public enum ModelError: Error, Sendable, CustomStringConvertible {
    /// The ONNX file at this path could not be read.
    case onnx(String, ONNXError)
    /// The `.apus` file at this path could not be read or failed its checksum.
    case artifact(String, ArtifactError)
    /// A golden example did not reproduce its stored output.
    case goldenMismatch(GoldenReport)
    /// The graph is invalid, unsupported, or a run failed (the error names the node or input).
    case graph(GraphError)
    /// The file could not be read at all.
    case io(String, String)
    /// An image could not be decoded or preprocessed.
    case image(String, ImageError)
    /// The model has no preprocessing spec, so it cannot classify images.
    case noPreprocessing
    /// The model's output does not look like class scores.
    case notAClassifier(String)

    public var description: String {
        switch self {
        case .onnx(let path, let error): "\(path): \(error)"
        case .artifact(let path, let error): "\(path): \(error)"
        case .goldenMismatch(let report): "golden check failed: \(report)"
        case .graph(let error): "\(error)"
        case .io(let path, let reason): "\(path): \(reason)"
        case .image(let source, let error): "\(source): \(error)"
        case .noPreprocessing: "the model has no preprocessing spec; give one to classify images"
        case .notAClassifier(let reason): "not a classifier: \(reason)"
        }
    }
}
