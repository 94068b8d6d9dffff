import ApusOps
import ApusTensor

/// `Transpose`: output axis `k` is input axis `perm[k]`; `perm` defaults to the reversed axes.
struct Transpose: StrideCheckedOperator {
    let permutation: [Int]?
    /// The kernel planned by ``specialized(for:threadCount:)`` for one input shape.
    private var kernel: TransposeKernel?

    init(node: Node) throws(OperatorError) {
        permutation = try node.ints("perm")
    }

    private func resolvedPermutation(rank: Int) throws(OperatorError) -> [Int] {
        guard let permutation else { return Array((0..<rank).reversed()) }
        guard permutation.count == rank, permutation.sorted() == Array(0..<rank) else {
            throw .invalidAttribute("perm", reason: "\(permutation) is not a permutation of 0..<\(rank)")
        }
        return permutation
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let input = try inputs.required(0)
        let permutation = try resolvedPermutation(rank: input.shape.rank)
        return [ValueFact(dtype: input.dtype, shape: Shape(permutation.map { input.shape[$0] }))]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        let input = try inputs.required(0)
        var planned = self
        planned.kernel = TransposeKernel(
            shape: input.shape.dimensions, permutation: try resolvedPermutation(rank: input.shape.rank),
            elementByteSize: input.dtype.byteSize)
        return planned
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let input = try inputs.required(0)
        let kernel: TransposeKernel
        if let planned = self.kernel {
            kernel = planned
        } else {
            kernel = TransposeKernel(
                shape: input.shape.dimensions, permutation: try resolvedPermutation(rank: input.shape.rank),
                elementByteSize: input.dtype.byteSize)
        }
        kernel.run(source: input.rawPointer, destination: outputs[0].rawPointer, context: context)
    }
}
