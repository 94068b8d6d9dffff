import ApusOps
import ApusTensor

/// `Pad`: pads (or, with negative pads, crops) every axis. `pads` is `[begin₀, begin₁, …, end₀,
/// end₁, …]` over `axes` (opset 18; all axes by default), a constant input from opset 11 and an
/// attribute before. Modes `constant` (input 2 or attribute `value`, default 0), `reflect`,
/// `edge` and `wrap`.
struct Pad: StrideCheckedOperator {
    enum Mode: String {
        case constant, reflect, edge, wrap
    }

    let mode: Mode
    let attributePads: [Int]?
    let attributeValue: Float
    private var copy: LayoutCopy?

    init(node: Node) throws(OperatorError) {
        let name = try node.string("mode", default: "constant")
        guard let mode = Mode(rawValue: name) else {
            throw .invalidAttribute("mode", reason: "'\(name)' is not constant, reflect, edge or wrap")
        }
        self.mode = mode
        attributePads = try node.ints("pads")
        attributeValue = try node.float("value", default: 0)
    }

    /// Per axis: padding before (negative crops) and the output size.
    struct Plan {
        var begins: [Int]
        var shape: [Int]
    }

    private func plan(shape: Shape, pads: [Int]?, axes: [Int]?) throws(OperatorError) -> Plan {
        guard let pads = pads ?? attributePads else { throw .missingInput(index: 1) }
        let rank = shape.rank
        let axes = try LayoutSupport.distinctAxes(axes ?? Array(0..<rank), rank: rank)
        guard pads.count == 2 * axes.count else {
            throw .invalidShape("Pad pads \(pads) need 2 × \(axes.count) values for axes \(axes)")
        }
        var plan = Plan(begins: Array(repeating: 0, count: rank), shape: shape.dimensions)
        for (index, axis) in axes.enumerated() {
            let begin = pads[index]
            let end = pads[index + axes.count]
            let (partial, overflow1) = shape[axis].addingReportingOverflow(begin)
            let (size, overflow2) = partial.addingReportingOverflow(end)
            guard !overflow1, !overflow2, size >= 0 else {
                throw .invalidShape(
                    "Pad of axis \(axis) (size \(shape[axis])) by \(begin), \(end) gives a negative or overflowing size"
                )
            }
            if mode != .constant, shape[axis] == 0, size > 0 {
                throw .invalidShape("Pad mode \(mode.rawValue) cannot pad axis \(axis) of size 0")
            }
            plan.begins[axis] = begin
            plan.shape[axis] = size
        }
        return plan
    }

    private func layoutCopy(_ plan: Plan, input: Shape, elementByteSize: Int) -> LayoutCopy {
        let strides = input.strides
        if mode == .constant {
            // Copy the box of output positions that fall inside the input; the rest is filled.
            var box: [Int] = []
            var starts: [Int] = []
            var base = 0
            for axis in 0..<input.rank {
                let lower = Swift.max(0, plan.begins[axis])
                let upper = Swift.min(plan.shape[axis], plan.begins[axis] + input[axis])
                box.append(Swift.max(0, upper - lower))
                starts.append(lower)
                base += (lower - plan.begins[axis]) * strides[axis]
            }
            let outputStrides = LayoutCopy.rowMajorStrides(plan.shape)
            return LayoutCopy(
                shape: box, sourceStrides: strides, sourceBase: base, destinationStrides: outputStrides,
                destinationBase: zip(starts, outputStrides).reduce(0) { $0 + $1.0 * $1.1 },
                elementByteSize: elementByteSize)
        }
        let tables = (0..<input.rank).map { axis in
            let dimension = input[axis]
            return (0..<plan.shape[axis]).map { position in
                let coordinate = position - plan.begins[axis]
                let index: Int
                switch mode {
                case .edge: index = Swift.min(Swift.max(coordinate, 0), dimension - 1)
                case .wrap: index = ((coordinate % dimension) + dimension) % dimension
                default:
                    let period = 2 * (dimension - 1)
                    if period == 0 {
                        index = 0
                    } else {
                        let folded = ((coordinate % period) + period) % period
                        index = folded < dimension ? folded : period - folded
                    }
                }
                return index * strides[axis]
            }
        }
        return LayoutCopy(shape: plan.shape, sourceOffsets: tables, elementByteSize: elementByteSize)
    }

    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...4)
        let input = try inputs.required(0)
        if let value = inputs.optional(2), value.dtype != input.dtype {
            throw .dtypeMismatch(input: 2, expected: input.dtype, actual: value.dtype)
        }
        let plan = try plan(
            shape: input.shape, pads: try LayoutSupport.constantIntegers(inputs, 1),
            axes: try LayoutSupport.constantIntegers(inputs, 3))
        let shape = try LayoutSupport.shape(plan.shape)
        try GeneratedTensorLimits.check(shape, dtype: input.dtype, operator: "Pad")
        return [ValueFact(dtype: input.dtype, shape: shape)]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        let input = try inputs.required(0)
        let plan = try plan(
            shape: input.shape, pads: try LayoutSupport.constantIntegers(inputs, 1),
            axes: try LayoutSupport.constantIntegers(inputs, 3))
        var planned = self
        planned.copy = layoutCopy(plan, input: input.shape, elementByteSize: input.dtype.byteSize)
        return planned
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let input = try inputs.required(0)
        let output = outputs[0]
        let copy: LayoutCopy
        if let planned = self.copy {
            copy = planned
        } else {
            let plan = try plan(
                shape: input.shape, pads: try LayoutSupport.runIntegers(inputs, 1),
                axes: try LayoutSupport.runIntegers(inputs, 3))
            copy = layoutCopy(plan, input: input.shape, elementByteSize: input.dtype.byteSize)
        }
        if mode == .constant, copy.shape != output.shape.dimensions {
            try fillPadValue(output, inputs: inputs)
        }
        copy.run(source: input.rawPointer, destination: output.rawPointer, context: context)
    }

    private func fillPadValue(_ output: Tensor, inputs: [Tensor?]) throws(OperatorError) {
        let size = output.dtype.byteSize
        if let value = inputs.optional(2) {
            guard value.dtype == output.dtype else {
                throw .dtypeMismatch(input: 2, expected: output.dtype, actual: value.dtype)
            }
            if value.elementCount > 0 {
                Layout.fill(
                    output.rawPointer, count: output.elementCount, elementByteSize: size, value: value.rawPointer)
                return
            }
        } else if attributeValue != 0 {
            let scalar = try ConstantValues.tensor(attributeValue, as: output.dtype)
            Layout.fill(output.rawPointer, count: output.elementCount, elementByteSize: size, value: scalar.rawPointer)
            return
        }
        output.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: output.byteCount)
    }
}

/// `Expand`: broadcasts the input against the constant `shape` input (bidirectionally, so the
/// output may be larger than `shape` on axes where the input is larger).
struct Expand: ConstantShapedCopy {
    static let operatorName = "Expand"
    var copy: LayoutCopy?

    init(node: Node) throws(OperatorError) {}

    static func outputShape(_ input: Shape, _ requested: [Int]) throws(OperatorError) -> [Int] {
        let rank = Swift.max(input.rank, requested.count)
        return try (0..<rank).map { axis throws(OperatorError) in
            let a = axis - (rank - input.rank) >= 0 ? input[axis - (rank - input.rank)] : 1
            let b = axis - (rank - requested.count) >= 0 ? requested[axis - (rank - requested.count)] : 1
            guard a == b || a == 1 || b == 1, b >= 0 else {
                throw .invalidShape("Expand cannot broadcast \(input) to \(requested)")
            }
            return a == 1 ? b : a
        }
    }

    static func layoutCopy(input: Shape, output: [Int], elementByteSize: Int) -> LayoutCopy {
        let offset = output.count - input.rank
        let strides = input.strides
        let sourceStrides = output.indices.map { axis in
            axis < offset || input[axis - offset] == 1 ? 0 : strides[axis - offset]
        }
        return LayoutCopy(shape: output, sourceStrides: sourceStrides, elementByteSize: elementByteSize)
    }
}

/// `Tile`: repeats the input `repeats[k]` times along each axis (`repeats` constant, one
/// non-negative value per axis).
struct Tile: ConstantShapedCopy {
    static let operatorName = "Tile"
    var copy: LayoutCopy?

    init(node: Node) throws(OperatorError) {}

    static func outputShape(_ input: Shape, _ repeats: [Int]) throws(OperatorError) -> [Int] {
        guard repeats.count == input.rank, repeats.allSatisfy({ $0 >= 0 }) else {
            throw .invalidShape("Tile repeats \(repeats) must be \(input.rank) non-negative values for input \(input)")
        }
        return try zip(input.dimensions, repeats).map { dimension, count throws(OperatorError) in
            try LayoutSupport.product(dimension, count, "Tile of \(input) by \(repeats)")
        }
    }

    static func layoutCopy(input: Shape, output: [Int], elementByteSize: Int) -> LayoutCopy {
        let strides = input.strides
        let tables = output.indices.map { axis in
            (0..<output[axis]).map { position in (position % input[axis]) * strides[axis] }
        }
        return LayoutCopy(shape: output, sourceOffsets: tables, elementByteSize: elementByteSize)
    }
}

/// An operator whose output is a strided copy of its input, shaped by a constant second input
/// (`Expand`'s shape, `Tile`'s repeats): one shape rule and one copy plan per operator, the rest shared.
protocol ConstantShapedCopy: StrideCheckedOperator {
    /// The operator type, for size-limit errors.
    static var operatorName: String { get }
    /// The copy planned at plan time; `nil` when run unplanned (constant folding).
    var copy: LayoutCopy? { get set }
    /// The output shape for the input shape and the constant second input.
    static func outputShape(_ input: Shape, _ values: [Int]) throws(OperatorError) -> [Int]
    /// The copy from the input to an output of shape `output`.
    static func layoutCopy(input: Shape, output: [Int], elementByteSize: Int) -> LayoutCopy
}

extension ConstantShapedCopy {
    func uncheckedOutputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...2)
        let input = try inputs.required(0)
        guard let values = try LayoutSupport.constantIntegers(inputs, 1) else { throw .missingInput(index: 1) }
        let shape = try LayoutSupport.shape(try Self.outputShape(input.shape, values))
        try GeneratedTensorLimits.check(shape, dtype: input.dtype, operator: Self.operatorName)
        return [ValueFact(dtype: input.dtype, shape: shape)]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        let input = try inputs.required(0)
        let output = try outputFacts(inputs)[0]
        var planned = self
        planned.copy = Self.layoutCopy(
            input: input.shape, output: output.shape.dimensions, elementByteSize: input.dtype.byteSize)
        return planned
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let input = try inputs.required(0)
        let copy =
            self.copy
            ?? Self.layoutCopy(
                input: input.shape, output: outputs[0].shape.dimensions, elementByteSize: input.dtype.byteSize)
        copy.run(source: input.rawPointer, destination: outputs[0].rawPointer, context: context)
    }
}
