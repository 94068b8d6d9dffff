import ApusOps
import ApusTensor

/// `DepthToSpace` (`mode` DCR or CRD) and `SpaceToDepth` on 4-D NCHW tensors of any dtype.
struct SpaceDepth: Operator {
    let toSpace: Bool
    let block: Int
    let order: Rearrange.DepthOrder

    init(node: Node, toSpace: Bool) throws(OperatorError) {
        self.toSpace = toSpace
        guard let block = try node.int("blocksize"), block >= 1 else { throw .missingAttribute("blocksize") }
        self.block = block
        switch try node.string("mode", default: "DCR") {
        case "DCR": order = .depthColumnRow
        case "CRD": order = .columnRowDepth
        case let other: throw .invalidAttribute("mode", reason: "unknown value '\(other)'")
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let x = try inputs.required(0)
        guard x.shape.rank == 4 else {
            throw .invalidShape("\(toSpace ? "DepthToSpace" : "SpaceToDepth") needs 4-D input, got \(x.shape)")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let area = try LayoutSupport.product(block, block, "blocksize²")
        if toSpace {
            guard c % area == 0 else { throw .invalidShape("DepthToSpace channels \(c) not divisible by \(area)") }
            let height = try LayoutSupport.product(h, block, "DepthToSpace height")
            let width = try LayoutSupport.product(w, block, "DepthToSpace width")
            return [ValueFact(dtype: x.dtype, shape: try LayoutSupport.shape([n, c / area, height, width]))]
        }
        guard h % block == 0, w % block == 0 else {
            throw .invalidShape("SpaceToDepth input \(x.shape) not divisible by block \(block)")
        }
        let channels = try LayoutSupport.product(c, area, "SpaceToDepth channels")
        return [ValueFact(dtype: x.dtype, shape: try LayoutSupport.shape([n, channels, h / block, w / block]))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        if toSpace {
            Rearrange.depthToSpace(
                x.rawPointer, outputs[0].rawPointer, batch: n, channels: c, height: h, width: w, block: block,
                order: order, elementSize: x.dtype.byteSize)
        } else {
            Rearrange.spaceToDepth(
                x.rawPointer, outputs[0].rawPointer, batch: n, channels: c, height: h, width: w, block: block,
                elementSize: x.dtype.byteSize)
        }
    }
}

/// `Trilu`: keeps the upper (`upper = 1`) or lower triangle of the last two axes relative to
/// diagonal `k` (optional int64 scalar input 1), zeroing the rest.
struct Trilu: Operator {
    let upper: Bool

    init(node: Node) throws(OperatorError) {
        upper = try node.int("upper", default: 1) != 0
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...2)
        let x = try inputs.required(0)
        guard x.shape.rank >= 2 else { throw .invalidShape("Trilu needs at least 2-D input, got \(x.shape)") }
        if let k = inputs.optional(1), k.dtype != .int64 { throw .unsupportedDType(input: 1, k.dtype) }
        return [ValueFact(dtype: x.dtype, shape: x.shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        var k = 0
        if let tensor = inputs.optional(1) {
            let values = try LayoutSupport.integers(tensor, input: 1)
            guard values.count == 1 else { throw .invalidShape("Trilu k must be one value, has \(values.count)") }
            k = values[0]
        }
        let rank = x.shape.rank
        let (rows, columns) = (x.shape[rank - 2], x.shape[rank - 1])
        // Clamp k so the column − row comparisons cannot overflow.
        k = max(-rows - 1, min(columns + 1, k))
        Rearrange.triangle(
            x.rawPointer, outputs[0].rawPointer, matrices: x.shape.dimensions[..<(rank - 2)].reduce(1, *), rows: rows,
            columns: columns, k: k, upper: upper, elementSize: x.dtype.byteSize)
    }
}
