/// How the `C` operand of ONNX `Gemm` broadcasts over the m×n result.
public enum GemmAddend: Sendable, Hashable {
    /// No `C`.
    case none
    /// One value (shape `[]`, `[1]` or `[1, 1]`).
    case scalar
    /// One value per column (shape `[n]` or `[1, n]`).
    case row
    /// One value per row (shape `[m, 1]`).
    case column
    /// A full m×n matrix.
    case matrix
}

/// `Y = activation(alpha · op(A) · op(B) + beta · C)` with the work split chosen at plan time.
///
/// The result is cut into row and column tiles whose sizes depend only on m, n and k; each tile
/// is one single-threaded sgemm, so the result is bitwise the same for any thread count.
public struct GemmPlan: Sendable, Hashable {
    /// Rows of the result.
    public let m: Int
    /// Columns of the result.
    public let n: Int
    /// The reduction length.
    public let k: Int
    /// Whether `A` is stored k×m (transposed).
    public let transposeA: Bool
    /// Whether `B` is stored n×k (transposed); a constant `B` is used as stored, never copied.
    public let transposeB: Bool
    let rowTile: Int
    let columnTile: Int

    public init(m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false) {
        self.m = m
        self.n = n
        self.k = k
        self.transposeA = transposeA
        self.transposeB = transposeB
        // Tiles of at least 64 columns and 32 rows, about four per problem when it is large enough.
        columnTile = n <= 128 ? max(n, 1) : max(64, ((n + 3) / 4 + 63) / 64 * 64)
        let columnTiles = (n + columnTile - 1) / columnTile
        if columnTiles >= 4 || m <= 64 {
            rowTile = max(m, 1)
        } else {
            let wanted = (4 + columnTiles - 1) / columnTiles
            rowTile = max(32, ((m + wanted - 1) / wanted + 15) / 16 * 16)
        }
    }

    var rowTileCount: Int { (m + rowTile - 1) / rowTile }
    var columnTileCount: Int { (n + columnTile - 1) / columnTile }
    /// Independent tiles of one product.
    var tileCount: Int { m == 0 || n == 0 ? 0 : rowTileCount * columnTileCount }

    /// Computes the product into `output` (m×n, row-major).
    ///
    /// - Parameters:
    ///   - a: m×k, or k×m when ``transposeA``.
    ///   - b: k×n, or n×k when ``transposeB``.
    ///   - c: the addend laid out as `addend` says, or `nil` with ``GemmAddend/none``.
    public func run(
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>?, addend: GemmAddend,
        alpha: Float = 1, beta: Float = 1, output: UnsafeMutablePointer<Float>,
        activation: FusedActivation = .none, context: ComputeContext
    ) {
        /// One tile per task.
        struct Tiles: ParallelTasks {
            let plan: GemmPlan
            let a: UnsafePointer<Float>
            let b: UnsafePointer<Float>
            let c: UnsafePointer<Float>?
            let addend: GemmAddend
            let alpha: Float
            let beta: Float
            let output: UnsafeMutablePointer<Float>
            let activation: FusedActivation

            func run(_ tile: Int) {
                plan.runTile(
                    tile, a: a, b: b, c: c, addend: addend, alpha: alpha, beta: beta, output: output,
                    activation: activation)
            }
        }
        context.parallelFor(
            tileCount,
            Tiles(
                plan: self, a: a, b: b, c: c, addend: addend, alpha: alpha, beta: beta, output: output,
                activation: activation))
    }

    /// One tile of ``run(a:b:c:addend:alpha:beta:output:activation:context:)``.
    func runTile(
        _ tile: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>?,
        addend: GemmAddend, alpha: Float, beta: Float, output: UnsafeMutablePointer<Float>,
        activation: FusedActivation
    ) {
        let row0 = (tile / columnTileCount) * rowTile
        let column0 = (tile % columnTileCount) * columnTile
        let rows = min(rowTile, m - row0)
        let columns = min(columnTile, n - column0)
        let out = output + row0 * n + column0
        // The addend first, so that sgemm accumulates onto it (beta 1): one pass less over memory.
        var sgemmBeta: Float = 0
        if let c, addend != .none, beta != 0 {
            sgemmBeta = 1
            for r in 0..<rows {
                let outRow = out + r * n
                switch addend {
                case .none: break
                case .scalar: outRow.update(repeating: beta * c[0], count: columns)
                case .column: outRow.update(repeating: beta * c[row0 + r], count: columns)
                case .row:
                    for j in 0..<columns { outRow[j] = beta * c[column0 + j] }
                case .matrix:
                    let cRow = c + (row0 + r) * n + column0
                    for j in 0..<columns { outRow[j] = beta * cRow[j] }
                }
            }
        }
        let aTile = transposeA ? a + row0 : a + row0 * k
        let bTile = transposeB ? b + column0 * k : b + column0
        if k == 0 {
            if sgemmBeta == 0 {
                for r in 0..<rows { (out + r * n).update(repeating: 0, count: columns) }
            }
        } else if rows == 1 {
            // One row: op(B)ᵀ · a as a matrix-vector product over this tile's columns, onto zeros
            // or the addend (beta 1: OpenBLAS's scaling by 0 does not clear NaN in every version).
            if sgemmBeta == 0 { out.update(repeating: 0, count: columns) }
            if transposeB {
                BLAS.sgemv(
                    transpose: false, m: columns, n: k, alpha: alpha, a: bTile, lda: k, x: aTile,
                    incx: transposeA ? m : 1, beta: 1, y: out, incy: 1)
            } else {
                BLAS.sgemv(
                    transpose: true, m: k, n: columns, alpha: alpha, a: bTile, lda: n, x: aTile,
                    incx: transposeA ? m : 1, beta: 1, y: out, incy: 1)
            }
        } else {
            BLAS.sgemm(
                transposeA: transposeA, transposeB: transposeB, m: rows, n: columns, k: k, alpha: alpha, a: aTile,
                lda: transposeA ? m : k, b: bTile, ldb: transposeB ? k : n, beta: sgemmBeta, c: out, ldc: n)
        }
        if activation != .none {
            for r in 0..<rows { activation.apply(to: out + r * n, count: columns) }
        }
    }

    /// The scalar reference: `activation(alpha · op(A) · op(B) + beta · C)` with plain loops.
    public static func reference(
        m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool, a: UnsafePointer<Float>,
        b: UnsafePointer<Float>, c: UnsafePointer<Float>?, addend: GemmAddend, alpha: Float, beta: Float,
        output: UnsafeMutablePointer<Float>, activation: FusedActivation = .none
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k {
                    let x = transposeA ? a[p * m + i] : a[i * k + p]
                    let y = transposeB ? b[j * k + p] : b[p * n + j]
                    sum += x * y
                }
                var value = alpha * sum
                if let c {
                    switch addend {
                    case .none: break
                    case .scalar: value += beta * c[0]
                    case .row: value += beta * c[j]
                    case .column: value += beta * c[i]
                    case .matrix: value += beta * c[i * n + j]
                    }
                }
                output[i * n + j] = activation.apply(value)
            }
        }
    }
}

/// Batched matrix product with numpy broadcasting of the batch dimensions (ONNX `MatMul`), the
/// 1-D promotion already resolved by the caller into m, n, k.
public struct MatMulPlan: Sendable, Hashable {
    /// The broadcast batch dimensions of the result.
    public let batchShape: [Int]
    /// Element strides of `A` per batch dimension (0 where `A` broadcasts).
    public let aBatchStrides: [Int]
    /// Element strides of `B` per batch dimension (0 where `B` broadcasts).
    public let bBatchStrides: [Int]
    /// The product of one batch entry.
    public let gemm: GemmPlan

    /// - Parameters:
    ///   - aBatchStrides, bBatchStrides: one stride per entry of `batchShape`, in elements; 0 for
    ///     broadcast dimensions.
    public init(batchShape: [Int], aBatchStrides: [Int], bBatchStrides: [Int], m: Int, n: Int, k: Int) {
        precondition(aBatchStrides.count == batchShape.count && bBatchStrides.count == batchShape.count)
        self.batchShape = batchShape
        self.aBatchStrides = aBatchStrides
        self.bBatchStrides = bBatchStrides
        self.gemm = GemmPlan(m: m, n: n, k: k)
    }

    /// Entries in the batch.
    public var batchCount: Int { batchShape.reduce(1, *) }

    /// Computes every batch entry's product into `output` (batch × m × n, row-major).
    public func run(
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, context: ComputeContext
    ) {
        /// One tile of one batch entry per task.
        struct Tiles: ParallelTasks {
            let plan: MatMulPlan
            let a: UnsafePointer<Float>
            let b: UnsafePointer<Float>
            let output: UnsafeMutablePointer<Float>

            func run(_ task: Int) {
                let gemm = plan.gemm
                let tilesPerEntry = gemm.tileCount
                let entry = task / tilesPerEntry
                var rest = entry
                var aOffset = 0
                var bOffset = 0
                for axis in stride(from: plan.batchShape.count - 1, through: 0, by: -1) {
                    let index = rest % plan.batchShape[axis]
                    rest /= plan.batchShape[axis]
                    aOffset += index * plan.aBatchStrides[axis]
                    bOffset += index * plan.bBatchStrides[axis]
                }
                gemm.runTile(
                    task % tilesPerEntry, a: a + aOffset, b: b + bOffset, c: nil, addend: .none, alpha: 1, beta: 0,
                    output: output + entry * gemm.m * gemm.n, activation: .none)
            }
        }
        context.parallelFor(batchCount * gemm.tileCount, Tiles(plan: self, a: a, b: b, output: output))
    }
}
