import CApusKernels
import CApusSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A constant left-hand matrix (weights) packed once, when a plan is made, into the panel layout
/// of the AVX-512 GEMM kernel: OpenBLAS packs its operands again on every call, which for a
/// layer's weights means copying megabytes per inference.
public final class PackedMatrix: @unchecked Sendable {
    /// Rows and columns of the matrix (M × K).
    public let rows: Int
    public let columns: Int
    /// Matrices stored back to back (the 36 Winograd position matrices share one allocation).
    public let matrixCount: Int
    /// Floats of one packed matrix.
    let stride: Int
    let values: UnsafeMutablePointer<Float>
    /// What keeps wrapped memory alive (``init(wrapping:rows:columns:matrixCount:owner:)``);
    /// `nil` when the matrix owns its allocation.
    private let owner: AnyObject?

    /// Packs `matrixCount` matrices of `rows` × `columns` (row-major, row stride `rowStride`),
    /// the `i`-th starting at `a + i · matrixStride`, on up to `threadCount` threads (ranges of
    /// row panels; the packed bytes do not depend on the split).
    public convenience init(
        _ a: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int, matrixCount: Int = 1, matrixStride: Int = 0,
        threadCount: Int = 1
    ) {
        self.init(rows: rows, columns: columns, matrixCount: matrixCount)
        let panels = (rows + PackedGemm.panelRows - 1) / PackedGemm.panelRows
        // About 64 K floats per task: enough to hide the hand-off, small enough to share the
        // panels of one layer between threads.
        let panelsPerTask = max(1, (1 << 16) / max(1, PackedGemm.panelRows * columns))
        let tasksPerMatrix = (panels + panelsPerTask - 1) / panelsPerTask
        nonisolated(unsafe) let a = a
        nonisolated(unsafe) let values = values
        let stride = stride
        ComputeContext(threadCount: threadCount).parallelFor(matrixCount * tasksPerMatrix) { task in
            let index = task / tasksPerMatrix
            let first = task % tasksPerMatrix * panelsPerTask
            apus_gemm_pack_panels(
                a + index * matrixStride, rowStride, rows, columns, first, min(panelsPerTask, panels - first),
                values + index * stride)
        }
    }

    /// Allocates `matrixCount` packed matrices of `rows` × `columns` for the caller to fill
    /// (``offset(panel:column:)``).
    init(rows: Int, columns: Int, matrixCount: Int) {
        self.rows = rows
        self.columns = columns
        self.matrixCount = matrixCount
        stride = apus_gemm_packed_count(rows, columns)
        values = WeightBuffer.allocate(floats: stride * matrixCount)
        owner = nil
    }

    /// Wraps `matrixCount` matrices of `rows` × `columns` already packed in this layout (weights
    /// prepacked into an artifact): nothing is copied, `owner` keeps the memory alive, and the
    /// kernels only read it. `values` must hold ``floatCount(rows:columns:matrixCount:)`` floats.
    init(wrapping values: UnsafePointer<Float>, rows: Int, columns: Int, matrixCount: Int, owner: AnyObject) {
        self.rows = rows
        self.columns = columns
        self.matrixCount = matrixCount
        stride = apus_gemm_packed_count(rows, columns)
        self.values = UnsafeMutablePointer(mutating: values)
        self.owner = owner
    }

    /// Floats of `matrixCount` packed matrices of `rows` × `columns` (rows padded to whole panels).
    public static func floatCount(rows: Int, columns: Int, matrixCount: Int = 1) -> Int {
        apus_gemm_packed_count(rows, columns) * matrixCount
    }

    /// The packed floats of all matrices, for storing them (`apus convert` prepacks weights).
    public var packedValues: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: values, count: stride * matrixCount)
    }

    /// Where, from the start of a packed matrix, the eight rows of `panel` hold column `column`:
    /// the columns come in blocks of `APUS_GEMM_BLOCK_COLUMNS`, each holding every panel, each
    /// panel column by column.
    func offset(panel: Int, column: Int) -> Int {
        let blockColumns = Int(APUS_GEMM_BLOCK_COLUMNS)
        let panelRows = PackedGemm.panelRows
        let first = column / blockColumns * blockColumns
        let width = min(blockColumns, columns - first)
        let paddedRows = (rows + panelRows - 1) / panelRows * panelRows
        return first * paddedRows + panel * panelRows * width + (column - first) * panelRows
    }

    deinit { if owner == nil { values.deallocate() } }
}

/// `C = A · B` with `A` a ``PackedMatrix``, on the AVX-512 kernel (CApusKernels).
public enum PackedGemm {
    /// Rows per packed panel: a row range handed to
    /// ``multiply(_:matrix:firstRow:rowCount:n:b:ldb:c:ldc:bias:residual:residualStride:activation:accumulate:)``
    /// must start at a multiple of it.
    public static let panelRows = Int(APUS_GEMM_PANEL_ROWS)

    /// Whether a packed kernel can run here: ``hasAVX512`` or ``hasAVX2``.
    public static let isAvailable: Bool = hasAVX512 || hasAVX2

    /// Whether the AVX-512 kernels run here (this GEMM's, and the depthwise, direct, Winograd,
    /// pooling and logistic kernels written for AVX-512): the CPU has AVX-512F and VL, AVX2 and
    /// FMA, and the OS saves the vector registers. `APUS_PACKED_GEMM=0` in the environment turns
    /// every packed kernel off (to compare against OpenBLAS), `APUS_PACKED_GEMM=avx2` the AVX-512
    /// ones (to run the AVX2 kernels on an AVX-512 CPU).
    public static let hasAVX512: Bool = {
        if let text = EnvironmentSwitch.value("APUS_PACKED_GEMM"), ["0", "avx2"].contains(text) { return false }
        let features = apus_cpu_features()
        let needed = UInt32(
            APUS_CPU_AVX512F | APUS_CPU_AVX512VL | APUS_CPU_AVX2 | APUS_CPU_FMA | APUS_CPU_OS_AVX512 | APUS_CPU_OS_AVX)
        return features & needed == needed
    }()

    /// Whether the AVX2 + FMA GEMM kernel (`apus_gemm_packed_avx2`: the same layout and the same
    /// bits as the AVX-512 one) can run here; it runs when ``hasAVX512`` is false.
    /// `APUS_PACKED_GEMM=0` turns it off.
    public static let hasAVX2: Bool = {
        if EnvironmentSwitch.isOff("APUS_PACKED_GEMM") { return false }
        return cpuHasAVX2
    }()

    /// Whether the CPU has AVX2 and FMA and the OS saves the YMM registers, whatever the
    /// environment says: what every AVX2 kernel (this GEMM's, the depthwise rows) needs.
    static let cpuHasAVX2: Bool = {
        let needed = UInt32(APUS_CPU_AVX2 | APUS_CPU_FMA | APUS_CPU_OS_AVX)
        return apus_cpu_features() & needed == needed
    }()

    /// Computes rows `firstRow ..< firstRow + rowCount` of `A · B` into `c` (row stride `ldc`), with
    /// `B` the K × `n` matrix at `b` (row stride `ldb`) and `A` matrix `matrix` of `packed`; then,
    /// while each block is in registers, adds `bias` (one value per computed row) and `residual`
    /// (the layout of `c`, row stride `residualStride`) and applies `activation` — `.none`,
    /// `.relu`, `.clip`, `.sigmoid` and `.silu` in the kernel (the last two with the exp of
    /// ``logistic(_:count:silu:)``), others by ``Epilogue`` right after. Bitwise
    /// independent of how rows and columns are split into calls. With `accumulate` the sums
    /// continue from `c`'s values (`c += A · B`, then the epilogue), so a product over several
    /// calls along K sums its terms in call order. `values` replaces the packed floats by others
    /// in the same layout (the weights scaled per run, ``Conv2DPlan/runScaledInput(input:scale:scaleStride:bias:residual:output:activation:context:)``).
    /// `reduction` (AVX-512 only) multiplies the columns of `A` in that range alone, `b` then
    /// holding the range's rows from its row 0: ranges summed one after another with
    /// `accumulate` give the bits of the whole product.
    @inline(__always)
    public static func multiply(
        _ packed: PackedMatrix, matrix: Int = 0, firstRow: Int, rowCount: Int, n: Int, b: UnsafePointer<Float>,
        ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil,
        residual: UnsafePointer<Float>? = nil, residualStride: Int = 0, activation: FusedActivation = .none,
        accumulate: Bool = false, values replacement: UnsafePointer<Float>? = nil, reduction: Range<Int>? = nil
    ) {
        precondition(isAvailable, "the packed GEMM kernel needs AVX-512 or AVX2 and FMA")
        precondition(firstRow % panelRows == 0 && firstRow + rowCount <= packed.rows, "row range off the panels")
        precondition(
            reduction.map { hasAVX512 && $0.lowerBound >= 0 && $0.upperBound <= packed.columns } ?? true,
            "reduction range off the matrix, or no AVX-512")
        let values = (replacement ?? UnsafePointer(packed.values)) + matrix * packed.stride
        let (inKernel, low, high, rest) = kernelActivation(activation)
        let range = reduction ?? 0..<packed.columns
        var epilogue = apus_gemm_epilogue(
            bias: bias, residual: residual, residual_stride: residualStride, activation: inKernel, low: low, high: high)
        let plain = bias == nil && residual == nil && inKernel == Int32(APUS_GEMM_NONE)
        withUnsafePointer(to: &epilogue) { epiloguePointer in
            let e = plain ? nil : epiloguePointer
            if hasAVX512 {
                apus_gemm_packed_range_avx512(
                    values, packed.rows, firstRow, packed.columns, range.lowerBound, range.upperBound, rowCount, n, b,
                    ldb, c, ldc, accumulate ? 1 : 0, e)
            } else {
                apus_gemm_packed_avx2(
                    values, packed.rows, firstRow, packed.columns, rowCount, n, b, ldb, c, ldc, accumulate ? 1 : 0, e)
            }
        }
        if rest != .none {
            Epilogue.apply(
                to: c, rowCount: rowCount, columnCount: n, rowStride: ldc, bias: nil, residual: nil,
                residualRowStride: 0, activation: rest)
        }
    }

    /// Splits `activation` into what the AVX-512 kernels apply in registers (code, clip bounds)
    /// and what is left for ``Epilogue`` afterwards (`.none` when nothing is).
    static func kernelActivation(_ activation: FusedActivation) -> (
        code: Int32, low: Float, high: Float, rest: FusedActivation
    ) {
        switch activation {
        case .none: return (Int32(APUS_GEMM_NONE), 0, 0, .none)
        case .relu: return (Int32(APUS_GEMM_RELU), 0, 0, .none)
        case .clip(let low, let high): return (Int32(APUS_GEMM_CLIP), low, high, .none)
        case .sigmoid: return (Int32(APUS_GEMM_SIGMOID), 0, 0, .none)
        case .silu: return (Int32(APUS_GEMM_SILU), 0, 0, .none)
        default: return (Int32(APUS_GEMM_NONE), 0, 0, activation)
        }
    }

    /// Replaces `count` values by their sigmoid, or their SiLU when `silu`, sixteen lanes at a
    /// time with AVX-512 (the algorithm of ``VectorMath``'s exp, within a few ulp of libm).
    public static func logistic(_ values: UnsafeMutablePointer<Float>, count: Int, silu: Bool) {
        precondition(hasAVX512, "the AVX-512 kernels are not available")
        apus_logistic_avx512(values, count, silu ? 1 : 0)
    }
}
