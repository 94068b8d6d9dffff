import ApusTensor
import Foundation

/// The version of the `.apus` format a file declares: a major version this reader must
/// understand, and a minor version that only ever adds optional fields.
public struct ArtifactFormatVersion: Hashable, Sendable, CustomStringConvertible {
    /// Incompatible changes; a reader refuses majors it does not know.
    public var major: Int
    /// Backward-compatible additions; readers ignore what they do not know.
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// The version this library writes.
    public static let current = ArtifactFormatVersion(major: 1, minor: 0)

    public var description: String { "\(major).\(minor)" }
}

/// An example input with the outputs a reference implementation computed for it.
public struct GoldenExample: Sendable {
    /// Input tensors by graph input name.
    public var inputs: [String: Tensor]
    /// Expected output tensors by graph output name.
    public var outputs: [String: Tensor]
    /// A run passes iff `max|actual − expected| <= absolute + relative * max|expected|`.
    public var tolerance: (relative: Float, absolute: Float)
    /// Who computed the outputs, e.g. `"pytorch"` or `"apus"`.
    public var source: String

    public init(
        inputs: [String: Tensor], outputs: [String: Tensor], tolerance: (relative: Float, absolute: Float),
        source: String
    ) {
        self.inputs = inputs
        self.outputs = outputs
        self.tolerance = tolerance
        self.source = source
    }
}

/// Everything an `.apus` file stores, as written by ``ArtifactWriter``.
public struct ArtifactContents: Sendable {
    /// The graph; its initializers (and tensor attributes) go into the data section.
    public var graph: Graph
    /// The preprocessing pipeline spec as JSON text (opaque at this layer), or `nil`.
    public var preprocessJSON: Data?
    /// Class labels, or `nil`.
    public var labels: [String]?
    /// `"logits"` or `"probabilities"`, or `nil`.
    public var outputKind: String?
    /// Example inputs with reference outputs.
    public var goldens: [GoldenExample]
    /// Free-form string metadata (producer, versions, source model, creation time, …).
    public var metadata: [String: String]
    /// Whether float16 initializers are float32 weights stored at half size (`float16_weights`).
    public var float16Weights = false

    public init(
        graph: Graph, preprocessJSON: Data? = nil, labels: [String]? = nil, outputKind: String? = nil,
        goldens: [GoldenExample] = [], metadata: [String: String] = [:]
    ) {
        self.graph = graph
        self.preprocessJSON = preprocessJSON
        self.labels = labels
        self.outputKind = outputKind
        self.goldens = goldens
        self.metadata = metadata
    }

    /// The contents of a file that was read, for rewriting it.
    public init(_ artifact: Artifact) {
        self.init(
            graph: artifact.graph, preprocessJSON: artifact.preprocessJSON, labels: artifact.labels,
            outputKind: artifact.outputKind, goldens: artifact.goldens, metadata: artifact.metadata)
        float16Weights = artifact.float16Weights
    }
}

/// A validated `.apus` file: the graph with its weights (which point into the memory-mapped file,
/// not copies), the preprocessing spec, labels, golden examples and metadata.
///
/// ```swift
/// let artifact = try ArtifactReader.read(contentsOf: URL(filePath: "resnet18.apus"))
/// try artifact.verifyChecksum()   // optional: hashes the whole data section
/// ```
public struct Artifact: Sendable {
    /// The graph; initializers wrap the mapped data section.
    public var graph: Graph
    /// The raw JSON text of the header's `preprocess` value, or `nil` when absent.
    public var preprocessJSON: Data?
    /// Class labels, or `nil`.
    public var labels: [String]?
    /// `"logits"` or `"probabilities"` (or another producer-defined kind), or `nil`.
    public var outputKind: String?
    /// Whether float16 initializers are float32 weights stored at half size (header field
    /// `float16_weights`); loaders convert them back to float32.
    public var float16Weights: Bool = false
    /// Example inputs with reference outputs.
    public var goldens: [GoldenExample]
    /// Free-form string metadata.
    public var metadata: [String: String]
    /// The SHA-256 of the data section the header declares (64 lower-case hex digits).
    public var dataSHA256: String
    /// The format version the file declares.
    public var formatVersion: ArtifactFormatVersion
    /// The whole data section (for checksum verification); shares the file mapping.
    let dataSection: TensorStorage

    /// Hashes the data section and compares the digest with ``dataSHA256``.
    ///
    /// - Throws: ``ArtifactError/checksumMismatch(expected:actual:)``.
    public func verifyChecksum() throws(ArtifactError) {
        let digest = SHA256.hash(UnsafeRawBufferPointer(start: dataSection.baseAddress, count: dataSection.byteCount))
        let actual = SHA256.hexString(digest)
        guard actual == dataSHA256 else { throw .checksumMismatch(expected: dataSHA256, actual: actual) }
    }
}
