import CApusKernels

/// Convolution weights packed ahead of time (by `apus convert`, stored in the artifact) in one of
/// the layouts a ``Conv2DPlan`` keeps its weights in, so that making the plan copies nothing: the
/// kernels read the packed floats where they lie, in the memory-mapped file.
///
/// The packed bytes are a pure function of the weights, the geometry and the layout, never of
/// the CPU or the thread count; a plan takes them only when its own choice of algorithm needs
/// exactly this layout and size, and packs the plain weights itself otherwise.
public struct PrepackedWeights: @unchecked Sendable {
    /// The packed forms a plan can keep.
    public enum Layout: String, Sendable, CaseIterable {
        /// The M × K weight matrix in the packed GEMM kernel's panels (pointwise and im2col paths).
        case gemm
        /// One M × C matrix per kernel tap, each in panels (the ``Conv2DPlan/Algorithm/taps`` path).
        case taps
        /// The 36 Winograd F(4×4, 3×3) position matrices `G g Gᵀ`, each in panels.
        case winograd
    }

    /// The tag of the panel format the kernels read (panel rows and reduction block):
    /// prepacked weights written with another tag are ignored and packed again at load.
    public static let formatTag = "p\(PackedGemm.panelRows)k\(Int(APUS_GEMM_BLOCK_COLUMNS))"

    /// How the floats are laid out.
    public let layout: Layout
    /// The packed floats (64-byte aligned in an artifact).
    public let values: UnsafePointer<Float>
    /// How many floats `values` holds.
    public let count: Int
    /// Keeps `values` alive (the artifact's mapping).
    let owner: AnyObject

    /// Wraps `count` packed floats at `values`, kept alive by `owner`.
    public init(layout: Layout, values: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.layout = layout
        self.values = values
        self.count = count
        self.owner = owner
    }

    /// The text that names `layout` in this build's panel format (`FusedConv`'s `packed_layout`
    /// attribute), e.g. `taps/p8k128`.
    public static func attribute(_ layout: Layout) -> String { "\(layout.rawValue)/\(formatTag)" }

    /// The layout an attribute names, or `nil` when it names another panel format or no layout
    /// this build knows (the weights are then packed at load, as without prepacking).
    public static func layout(fromAttribute text: String) -> Layout? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1] == formatTag else { return nil }
        return Layout(rawValue: String(parts[0]))
    }
}
