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

    /// The panel format: which kernel reads the packed floats.
    public enum Format: Sendable, CaseIterable {
        /// The packed GEMM kernels' panels (AVX-512, and AVX2 on short reductions): rows of 8,
        /// the reduction in blocks of ``PackedGemm``'s block columns, rows past the end zero.
        case panels
        /// OpenBLAS's sgemm kernel on weights packed once (``BLASPackedMatrix``, CPUs without
        /// AVX-512): rows of 4 (then 2 and 1), the reduction in blocks of 384 steps, no padding.
        case openBLAS

        /// The tag that names the format in `packed_layout`, e.g. `p8k128` or `o4k384`.
        public var tag: String {
            switch self {
            case .panels: "p\(PackedGemm.panelRows)k\(Int(APUS_GEMM_BLOCK_COLUMNS))"
            case .openBLAS: "o4k\(Int(APUS_BLAS_REDUCTION_BLOCK))"
            }
        }
    }

    /// The CPUs an artifact's packed weights are laid out for (`apus convert --prepack-for`):
    /// each convolution gets the layout and format its plan reads on such a CPU. Other CPUs still
    /// load the file and pack the plain weights where the stored ones do not fit; the outputs
    /// never depend on it, only the time to make the plans does.
    public enum Target: String, Sendable, CaseIterable {
        /// CPUs with AVX-512: the packed AVX-512 kernel's panels.
        case avx512
        /// CPUs with AVX2 and FMA but no AVX-512: OpenBLAS's layout for the layers its kernel
        /// runs, the AVX2 kernel's panels for short reductions.
        case avx2
    }

    /// The tag of ``Format/panels``, the packed GEMM kernels' panel format.
    public static var formatTag: String { Format.panels.tag }

    /// How the floats are laid out.
    public let layout: Layout
    /// Which kernel's panels they are in.
    public let format: Format
    /// The packed floats (64-byte aligned in an artifact).
    public let values: UnsafePointer<Float>
    /// How many floats `values` holds.
    public let count: Int
    /// Keeps `values` alive (the artifact's mapping).
    let owner: AnyObject

    /// Wraps `count` packed floats at `values`, kept alive by `owner`.
    public init(
        layout: Layout, format: Format = .panels, values: UnsafePointer<Float>, count: Int, owner: AnyObject
    ) {
        self.layout = layout
        self.format = format
        self.values = values
        self.count = count
        self.owner = owner
    }

    /// The text that names `layout` in `format` (`FusedConv`'s `packed_layout` attribute), e.g.
    /// `taps/p8k128` or `gemm/o4k384`.
    public static func attribute(_ layout: Layout, format: Format = .panels) -> String {
        "\(layout.rawValue)/\(format.tag)"
    }

    /// The layout and format an attribute names, or `nil` when it names a panel format or layout
    /// this build does not know (the weights are then packed at load, as without prepacking).
    public static func layout(fromAttribute text: String) -> (layout: Layout, format: Format)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let format = Format.allCases.first(where: { $0.tag == parts[1] }),
            let layout = Layout(rawValue: String(parts[0]))
        else { return nil }
        return (layout, format)
    }
}
