import CApusKernels

/// A constant weight matrix packed once in the panel layout of OpenBLAS's own sgemm kernel, so
/// that a product with it runs that kernel without packing the weights again.
///
/// `cblas_sgemm` packs both operands on every call. For a convolution the weights never change,
/// and on small maps (7 × 7, 14 × 14, where a layer's weights are megabytes against a few dozen
/// columns) the packing is a large share of the call: on a Zen 3, resnet50's 512 × 49 × 4608
/// product runs at 69 GFLOP/s this way against 58 through `cblas_sgemm` (medians,
/// `scripts/perf/blas-prepacked.sh`; Docs/performance.md).
/// The packing and the kernel are OpenBLAS's (`sgemm_oncopy`, `sgemm_itcopy`, `sgemm_kernel` of
/// the running core, which DYNAMIC_ARCH builds export); the blocking around them is
/// `blas_packed.c`'s. Available for the cores in ``BLAS/packedKernelCores`` after a self-check
/// against a plain product (``isAvailable``); `APUS_BLAS_PACKED=0` turns it off.
public final class BLASPackedMatrix: @unchecked Sendable {
    /// Rows (M) and reduction length (K) of the matrix.
    public let rows: Int
    public let columns: Int
    let values: UnsafeMutablePointer<Float>
    /// Keeps prepacked `values` alive (an artifact's mapping); `nil` when this matrix owns them.
    let owner: AnyObject?

    /// Whether OpenBLAS's kernel and copy routines were found for the loaded core and passed the
    /// self-check, and `APUS_BLAS_PACKED` is not `0`.
    public static let isAvailable: Bool = {
        if EnvironmentSwitch.isOff("APUS_BLAS_PACKED") { return false }
        guard kernels != nil else { return false }
        return selfCheck()
    }()

    static let kernels: apus_blas_kernels? = {
        guard case .success(let functions) = BLAS.loaded else { return nil }
        return functions.packedKernels
    }()

    /// Packs `weights` (`rows` × `columns`, row-major, row stride `rowStride`) on up to
    /// `threadCount` threads (the bytes do not depend on it), or returns `nil` when
    /// ``isAvailable`` is false.
    public convenience init?(
        _ weights: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int, threadCount: Int = 1
    ) {
        // Row ranges of whole panels (four rows) pack to the same bytes wherever they are split.
        let rangeRows = max(4, (1 << 16) / max(1, columns) / 4 * 4)
        nonisolated(unsafe) let weights = weights
        self.init(
            rows: rows, columns: columns, tasks: (rows + rangeRows - 1) / max(1, rangeRows), threadCount: threadCount
        ) { task, matrix in
            let first = task * rangeRows
            matrix.pack(
                weights + first * rowStride, firstRow: first, count: min(rangeRows, rows - first), rowStride: rowStride)
        }
    }

    /// Allocates a `rows` × `columns` matrix and runs `fill(task, self)` for `tasks` tasks on up
    /// to `threadCount` threads; each task packs its own range of rows with
    /// ``pack(_:firstRow:count:rowStride:)`` (rows made on the fly, such as transformed
    /// weights, without a full-size intermediate copy). `nil` when ``isAvailable`` is false.
    init?(
        rows: Int, columns: Int, tasks: Int, threadCount: Int,
        fill: @escaping @Sendable (Int, BLASPackedMatrix) -> Void
    ) {
        guard BLASPackedMatrix.isAvailable, rows > 0, columns > 0 else { return nil }
        self.rows = rows
        self.columns = columns
        values = WeightBuffer.allocate(floats: rows * columns)
        owner = nil
        ComputeContext(threadCount: threadCount).parallelFor(tasks) { task in fill(task, self) }
    }

    /// Packs `count` rows from `w` (row stride `rowStride`) as rows `firstRow ..< firstRow +
    /// count` of this matrix: `firstRow` a multiple of 4, and `count` too unless the range ends at
    /// ``rows``. Disjoint ranges may be packed concurrently.
    func pack(_ w: UnsafePointer<Float>, firstRow: Int, count: Int, rowStride: Int) {
        let end = firstRow + count
        precondition(firstRow % 4 == 0 && (end % 4 == 0 || end == rows) && end <= rows, "row range off the panels")
        guard var kernels = BLASPackedMatrix.kernels else { return }
        apus_blas_pack_weights(&kernels, w, count, columns, rowStride, rows, firstRow, values)
    }

    /// Wraps `rows` × `columns` floats already in this layout (``write(_:rows:columns:rowStride:into:)``,
    /// stored in an artifact by `apus convert`), read in place and kept alive by `owner`; `nil`
    /// when ``isAvailable`` or ``readsStoredLayout`` is false.
    public init?(wrapping values: UnsafePointer<Float>, rows: Int, columns: Int, owner: AnyObject) {
        guard BLASPackedMatrix.isAvailable, BLASPackedMatrix.readsStoredLayout, rows > 0, columns > 0 else {
            return nil
        }
        self.rows = rows
        self.columns = columns
        self.values = UnsafeMutablePointer(mutating: values)
        self.owner = owner
    }

    deinit { if owner == nil { values.deallocate() } }

    /// Writes `weights` (`rows` × `columns`, row-major, row stride `rowStride`) in the layout this
    /// type packs to on the cores it runs on (four-row panels in blocks of 384 reduction steps),
    /// without OpenBLAS: `rows · columns` floats into `packed`. `apus convert --prepack-for avx2`
    /// stores it.
    public static func write(
        _ weights: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int,
        into packed: UnsafeMutablePointer<Float>
    ) {
        apus_blas_layout_write(weights, rows, columns, rowStride, packed)
    }

    /// Whether the loaded core's copy routine packs to the layout ``write(_:rows:columns:rowStride:into:)``
    /// writes, so that weights stored that way may be read in place: checked once on a matrix with
    /// every remainder of rows (4 + 4 + 2 + 1) and two reduction blocks, bit for bit.
    public static let readsStoredLayout: Bool = {
        guard var kernels else { return false }
        let rows = 11
        let k = Int(APUS_BLAS_REDUCTION_BLOCK) + 9
        let w = (0..<rows * k).map { Float($0) * 0.5 + 1 }
        var copied = [Float](repeating: 0, count: rows * k)
        var written = [Float](repeating: .nan, count: rows * k)
        w.withUnsafeBufferPointer { w in
            copied.withUnsafeMutableBufferPointer {
                apus_blas_pack_weights(&kernels, w.baseAddress!, rows, k, k, rows, 0, $0.baseAddress!)
            }
            written.withUnsafeMutableBufferPointer {
                apus_blas_layout_write(w.baseAddress!, rows, k, k, $0.baseAddress!)
            }
        }
        return copied == written
    }()

    /// Computes rows `firstRow ..< firstRow + rowCount` of `W · B` into `c` (row stride `ldc`),
    /// with `B` the `columns` × `n` matrix at `b` (row stride `ldb`). `firstRow` must be a
    /// multiple of 4, and the range end at a multiple of 4 or at ``rows``. The same call gives
    /// the same bits on any thread; the bits do depend on the call's row and column ranges
    /// (OpenBLAS's kernels for the edges of a block round differently from the main one), so
    /// callers split work into tiles that do not depend on the thread count, as
    /// ``Conv2DPlan`` does.
    @inline(__always)
    public func multiply(
        firstRow: Int, rowCount: Int, n: Int, b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>,
        ldc: Int
    ) {
        let end = firstRow + rowCount
        precondition(firstRow % 4 == 0 && (end % 4 == 0 || end == rows) && end <= rows, "row range off the panels")
        guard var kernels = BLASPackedMatrix.kernels else { preconditionFailure("OpenBLAS's kernel is not loaded") }
        let failed = apus_blas_packed_gemm(&kernels, values, rows, firstRow, rowCount, columns, n, b, ldb, c, ldc)
        precondition(failed == 0, "cannot allocate the packing buffer of this thread")
    }

    /// Multiplies a small matrix with row ranges, several reduction and column blocks and a
    /// remainder panel, and compares against a plain product: the layout of OpenBLAS's copy
    /// routines is theirs, not a published interface, so it is checked before it is used.
    static func selfCheck() -> Bool {
        guard var kernels else { return false }
        let rows = 10
        let k = Int(APUS_BLAS_REDUCTION_BLOCK) + 7
        let n = Int(APUS_BLAS_COLUMN_BLOCK) + 5
        var state: UInt32 = 12345
        func next() -> Float {
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Int(state >> 9) % 2001 - 1000) / 1000
        }
        let w = (0..<rows * k).map { _ in next() }
        let b = (0..<k * n).map { _ in next() }
        var packed = [Float](repeating: 0, count: rows * k)
        var c = [Float](repeating: .nan, count: rows * n)
        w.withUnsafeBufferPointer { w in
            packed.withUnsafeMutableBufferPointer { packed in
                apus_blas_pack_weights(&kernels, w.baseAddress!, rows, k, k, rows, 0, packed.baseAddress!)
            }
        }
        var failed: Int32 = 0
        packed.withUnsafeBufferPointer { packed in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    for (first, count) in [(0, 4), (4, 6)] {
                        failed |= apus_blas_packed_gemm(
                            &kernels, packed.baseAddress!, rows, first, count, k, n, b.baseAddress!, n,
                            c.baseAddress! + first * n, n)
                    }
                }
            }
        }
        if failed != 0 { return false }
        for row in 0..<rows {
            for column in 0..<n {
                var sum = 0.0
                var magnitude = 0.0
                for l in 0..<k {
                    let term = Double(w[row * k + l]) * Double(b[l * n + column])
                    sum += term
                    magnitude += abs(term)
                }
                if !(abs(Double(c[row * n + column]) - sum) <= 1e-5 * magnitude + 1e-6) { return false }
            }
        }
        return true
    }
}
