import Testing

@testable import ApusOps

@Suite struct GemmTests {
    init() throws { try BLAS.load() }

    struct Case: Sendable, CustomStringConvertible {
        var m: Int, n: Int, k: Int, transA: Bool, transB: Bool, addend: GemmAddend
        var description: String { "m\(m) n\(n) k\(k) tA \(transA) tB \(transB) \(addend)" }
    }

    static let cases: [Case] = [
        Case(m: 1, n: 1, k: 1, transA: false, transB: false, addend: .none),
        Case(m: 3, n: 5, k: 7, transA: true, transB: false, addend: .scalar),
        Case(m: 4, n: 17, k: 16, transA: false, transB: true, addend: .row),
        Case(m: 15, n: 9, k: 3, transA: true, transB: true, addend: .column),
        Case(m: 70, n: 300, k: 33, transA: false, transB: true, addend: .matrix),
        Case(m: 200, n: 130, k: 5, transA: false, transB: false, addend: .row),
        Case(m: 2, n: 1000, k: 64, transA: false, transB: true, addend: .row),
        Case(m: 3, n: 4, k: 0, transA: false, transB: false, addend: .scalar),
        // One row (the matrix-vector path): a classifier head, and every layout and addend.
        Case(m: 1, n: 1000, k: 1280, transA: false, transB: true, addend: .row),
        Case(m: 1, n: 300, k: 33, transA: true, transB: false, addend: .none),
        Case(m: 1, n: 130, k: 64, transA: false, transB: false, addend: .scalar),
        Case(m: 1, n: 17, k: 5, transA: true, transB: true, addend: .column),
        Case(m: 1, n: 9, k: 2, transA: false, transB: true, addend: .matrix),
    ]

    func run(_ c: Case, threads: Int, activation: FusedActivation = .relu) -> ([Float], [Float]) {
        var random = TestRandom(seed: UInt64(c.m * 1000 + c.n))
        let a = random.array(c.m * c.k)
        let b = random.array(c.k * c.n)
        let cCount =
            switch c.addend {
            case .none: 0
            case .scalar: 1
            case .row: c.n
            case .column: c.m
            case .matrix: c.m * c.n
            }
        let addend = random.array(cCount)
        var fast = [Float](repeating: .nan, count: c.m * c.n)
        var reference = [Float](repeating: .nan, count: c.m * c.n)
        let plan = GemmPlan(m: c.m, n: c.n, k: c.k, transposeA: c.transA, transposeB: c.transB)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                addend.withUnsafeBufferPointer { cp in
                    let cPointer = c.addend == .none ? nil : cp.baseAddress
                    let aBase = a.baseAddress ?? UnsafePointer(bitPattern: 64)!
                    let bBase = b.baseAddress ?? UnsafePointer(bitPattern: 64)!
                    fast.withUnsafeMutableBufferPointer {
                        plan.run(
                            a: aBase, b: bBase, c: cPointer, addend: c.addend, alpha: 0.5, beta: 2,
                            output: $0.baseAddress!, activation: activation,
                            context: ComputeContext(threadCount: threads))
                    }
                    reference.withUnsafeMutableBufferPointer {
                        GemmPlan.reference(
                            m: c.m, n: c.n, k: c.k, transposeA: c.transA, transposeB: c.transB, a: aBase, b: bBase,
                            c: cPointer, addend: c.addend, alpha: 0.5, beta: 2, output: $0.baseAddress!,
                            activation: activation)
                    }
                }
            }
        }
        return (fast, reference)
    }

    @Test(arguments: cases)
    func matchesReference(_ c: Case) {
        let (fast, reference) = run(c, threads: 1)
        expectClose(fast, reference, reduction: c.k, "\(c)")
        let (two, _) = run(c, threads: 2)
        #expect(fast.withUnsafeBytes { x in two.withUnsafeBytes { y in x.elementsEqual(y) } }, "\(c)")
    }

    @Test func batchedMatMulBroadcasts() {
        // A: [2, 1, 3, 4], B: [3, 4, 5] → [2, 3, 3, 5]; A broadcasts over axis 1, B over axis 0.
        var random = TestRandom(seed: 3)
        let a = random.array(2 * 3 * 4)
        let b = random.array(3 * 4 * 5)
        let plan = MatMulPlan(batchShape: [2, 3], aBatchStrides: [12, 0], bBatchStrides: [0, 20], m: 3, n: 5, k: 4)
        var out = [Float](repeating: .nan, count: 2 * 3 * 3 * 5)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer {
                    plan.run(
                        a: a.baseAddress!, b: b.baseAddress!, output: $0.baseAddress!,
                        context: ComputeContext(threadCount: 2))
                }
            }
        }
        var expected = [Float]()
        for i in 0..<2 {
            for j in 0..<3 {
                for r in 0..<3 {
                    for c in 0..<5 {
                        var s: Float = 0
                        for p in 0..<4 { s += a[i * 12 + r * 4 + p] * b[j * 20 + p * 5 + c] }
                        expected.append(s)
                    }
                }
            }
        }
        expectClose(out, expected, reduction: 4)
    }
}
