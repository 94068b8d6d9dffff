import ApusOps
import ApusTensor

/// `Gemm` (ONNX opsets 1–13): `Y = alpha · op(A) · op(B) + beta · C`, with `C` broadcast as a
/// scalar, a row ([N] or [1, N]), a column ([M, 1]) or a full [M, N] matrix; and its fused form
/// `FusedGemm` (domain `ai.apus`) with `activation` / `activation_params` applied to `Y`.
struct Gemm: Operator {
    let alpha: Float
    let beta: Float
    let transposeA: Bool
    let transposeB: Bool
    let activation: FusedActivation
    /// A constant `B` of at least ``streamedBytes`` in a product of at most ``streamedRows`` rows
    /// (a classifier at small batch): read from memory on every run at about one multiply-add
    /// per float, so memory bound. Read instead of input 1, and fetched ahead by an earlier step
    /// (``ReadAhead``). From ``TensorStorage/hugePageBytes`` to ``streamedCopyMaxBytes`` it is a
    /// copy, whose huge pages cost no TLB walk per 4 KiB (mobilenet_v2's 5 MB: 0.29 → 0.19 ms to
    /// read from DRAM; Docs/performance.md); otherwise the constant as loaded.
    var streamedB: Tensor?

    /// The largest number of rows of a product whose constant `B` is ``streamedB``.
    static let streamedRows = 8
    /// The smallest constant `B` that is ``streamedB``: 1 MiB.
    static let streamedBytes = 1 << 20
    /// The largest `B` copied onto huge pages: 64 MiB (a classifier is a few megabytes; a
    /// fully-connected layer of hundreds, as VGG's first, is read where it was loaded rather than
    /// copied at plan time).
    static let streamedCopyMaxBytes = 64 << 20

    init(node: Node, fused: Bool = false) throws(OperatorError) {
        alpha = try node.float("alpha", default: 1)
        beta = try node.float("beta", default: 1)
        transposeA = try node.int("transA", default: 0) != 0
        transposeB = try node.int("transB", default: 0) != 0
        if fused {
            let name = try node.string("activation", default: "")
            let parameters = try node.floats("activation_params") ?? []
            guard let activation = FusedActivation(name: name, parameters: parameters) else {
                throw .invalidAttribute(
                    "activation", reason: "unknown activation '\(name)' with parameters \(parameters)")
            }
            self.activation = activation
        } else {
            activation = .none
        }
    }

    /// m, n, k and how C broadcasts.
    func sizes(_ inputs: [ValueFact?]) throws(OperatorError) -> (m: Int, n: Int, k: Int, addend: GemmAddend) {
        try inputs.checkCount(2...3)
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard a.dtype == .float32 else { throw .unsupportedDType(input: 0, a.dtype) }
        guard b.dtype == .float32 else { throw .dtypeMismatch(input: 1, expected: .float32, actual: b.dtype) }
        guard a.shape.rank == 2, b.shape.rank == 2 else {
            throw .invalidShape("A \(a.shape) and B \(b.shape) must both have rank 2")
        }
        let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb else {
            throw .invalidShape("inner dimensions differ: op(A) is \(m)×\(k), op(B) is \(kb)×\(n)")
        }
        var addend = GemmAddend.none
        if let c = inputs.optional(2) {
            guard c.dtype == .float32 else { throw .dtypeMismatch(input: 2, expected: .float32, actual: c.dtype) }
            let d = c.shape.dimensions
            switch d.count {
            case 0: addend = .scalar
            case 1 where d[0] == 1: addend = n == 1 ? .row : .scalar
            case 1 where d[0] == n: addend = .row
            case 2 where d[0] == m && d[1] == n: addend = .matrix
            case 2 where d[0] == 1 && d[1] == 1: addend = .scalar
            case 2 where d[0] == 1 && d[1] == n: addend = .row
            case 2 where d[0] == m && d[1] == 1: addend = .column
            default: throw .invalidShape("C \(c.shape) does not broadcast to the \(m)×\(n) result")
            }
        }
        return (m, n, k, addend)
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        let (m, n, _, _) = try sizes(inputs)
        guard m.multipliedReportingOverflow(by: n).overflow == false else { throw .invalidShape("\(m)×\(n) overflows") }
        return [ValueFact(dtype: .float32, shape: [m, n])]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        let (m, _, _, _) = try sizes(inputs)
        guard m <= Self.streamedRows, let b = inputs.optional(1)?.constant, b.byteCount >= Self.streamedBytes else {
            return self
        }
        var copy = self
        copy.streamedB = b
        if b.byteCount >= TensorStorage.hugePageBytes, b.byteCount <= Self.streamedCopyMaxBytes,
            let resident = try? b.copy()
        {
            copy.streamedB = resident
            // The plan reads the copy from now on: a mapped file's pages of the original can go.
            b.releaseResidentPages()
        }
        return copy
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let a = try inputs.required(0)
        let b: Tensor
        if let streamedB { b = streamedB } else { b = try inputs.required(1) }
        let c = inputs.optional(2)
        let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let n = transposeB ? b.shape[0] : b.shape[1]
        let addend: GemmAddend
        if let c {
            let d = c.shape.dimensions
            if d.count == 2 && d[0] == m && d[1] == n && m * n > 1 {
                addend = .matrix
            } else if d.count == 2 && d[0] == m && d[1] == 1 && m > 1 {
                addend = .column
            } else if c.elementCount == n && n > 1 {
                addend = .row
            } else {
                addend = c.elementCount == 1 ? .scalar : .matrix
            }
        } else {
            addend = .none
        }
        // The plan only holds sizes and tile counts: building it per call allocates nothing.
        // A constant B with transB is read as stored: sgemm takes the transpose flag, no copy.
        let plan = GemmPlan(m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
        plan.run(
            a: a.pointer(as: Float.self), b: b.pointer(as: Float.self),
            c: c.map { UnsafePointer($0.pointer(as: Float.self)) },
            addend: addend, alpha: alpha, beta: beta, output: outputs[0].pointer(as: Float.self),
            activation: activation,
            context: context)
    }
}

/// `MatMul` (ONNX opsets 1–13): numpy matrix product with batch broadcasting; a 1-D first
/// operand is a row vector, a 1-D second operand a column vector, and the added axis is removed.
struct MatMul: Operator {
    var plan: MatMulPlan?

    init(node: Node) throws(OperatorError) {}

    func resolve(_ inputs: [ValueFact?]) throws(OperatorError) -> (MatMulPlan, Shape) {
        try inputs.checkCount(2...2)
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard a.dtype == .float32 else { throw .unsupportedDType(input: 0, a.dtype) }
        guard b.dtype == .float32 else { throw .dtypeMismatch(input: 1, expected: .float32, actual: b.dtype) }
        guard a.shape.rank >= 1, b.shape.rank >= 1 else {
            throw .invalidShape("MatMul operands \(a.shape) and \(b.shape) must have rank at least 1")
        }
        let aDims = a.shape.rank == 1 ? [1] + a.shape.dimensions : a.shape.dimensions
        let bDims = b.shape.rank == 1 ? b.shape.dimensions + [1] : b.shape.dimensions
        let (m, k) = (aDims[aDims.count - 2], aDims[aDims.count - 1])
        let (kb, n) = (bDims[bDims.count - 2], bDims[bDims.count - 1])
        guard k == kb else { throw .invalidShape("inner dimensions differ: \(a.shape) × \(b.shape)") }
        let aBatch = Array(aDims.dropLast(2))
        let bBatch = Array(bDims.dropLast(2))
        let rank = max(aBatch.count, bBatch.count)
        var batch = [Int](repeating: 1, count: rank)
        var aStrides = [Int](repeating: 0, count: rank)
        var bStrides = [Int](repeating: 0, count: rank)
        var aStride = m * k
        var bStride = k * n
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            let ai = axis - (rank - aBatch.count)
            let bi = axis - (rank - bBatch.count)
            let ad = ai >= 0 ? aBatch[ai] : 1
            let bd = bi >= 0 ? bBatch[bi] : 1
            guard ad == bd || ad == 1 || bd == 1 else {
                throw .invalidShape("batch dimensions of \(a.shape) and \(b.shape) do not broadcast")
            }
            batch[axis] = ad == 1 ? bd : ad
            aStrides[axis] = ad == 1 ? 0 : aStride
            bStrides[axis] = bd == 1 ? 0 : bStride
            aStride *= ad
            bStride *= bd
        }
        var output = batch
        if a.shape.rank > 1 { output.append(m) }
        if b.shape.rank > 1 { output.append(n) }
        let shape: Shape
        do {
            shape = try Shape(validating: output)
        } catch {
            throw .tensor(error)
        }
        return (
            MatMulPlan(batchShape: batch, aBatchStrides: aStrides, bBatchStrides: bStrides, m: m, n: n, k: k), shape
        )
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        [ValueFact(dtype: .float32, shape: try resolve(inputs).1)]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        var copy = self
        copy.plan = try resolve(inputs).0
        return copy
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        let plan: MatMulPlan
        if let specialized = self.plan {
            plan = specialized
        } else {
            plan = try resolve([ValueFact(dtype: a.dtype, shape: a.shape), ValueFact(dtype: b.dtype, shape: b.shape)]).0
        }
        if outputs[0].elementCount == 0 { return }
        if plan.gemm.k == 0 {
            outputs[0].pointer(as: Float.self).update(repeating: 0, count: outputs[0].elementCount)
            return
        }
        plan.run(
            a: a.pointer(as: Float.self), b: b.pointer(as: Float.self), output: outputs[0].pointer(as: Float.self),
            context: context)
    }
}
