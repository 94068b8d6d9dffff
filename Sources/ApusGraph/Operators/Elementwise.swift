import ApusOps
import ApusTensor

/// The broadcast output shape of `facts`, or `.invalidShape` naming them.
func broadcastShape(_ facts: [ValueFact]) throws(OperatorError) -> Shape {
    guard let dimensions = BroadcastLayout.broadcastDimensions(facts.map(\.shape.dimensions)) else {
        throw .invalidShape("cannot broadcast " + facts.map { "\($0.shape)" }.joined(separator: " with "))
    }
    return Shape(dimensions)
}

/// The broadcast layout of tensors (known to broadcast: outputFacts checked them).
func broadcastLayout(_ shapes: [Shape]) throws(OperatorError) -> BroadcastLayout {
    guard let layout = BroadcastLayout(operandDimensions: shapes.map(\.dimensions)) else {
        throw .invalidShape("cannot broadcast " + shapes.map { "\($0)" }.joined(separator: " with "))
    }
    return layout
}

/// Binary elementwise operators with numpy broadcasting: arithmetic (`Add`, `Sub`, `Mul`, `Div`,
/// `Pow`), comparisons (`Equal`, `Greater`, `Less`, `GreaterOrEqual`, `LessOrEqual`) and logic
/// (`And`, `Or`, `Xor`).
struct BinaryElementwise: Operator {
    enum Kind: Sendable {
        case arithmetic(BinaryFloatOperation)
        case equal, greater, less, greaterOrEqual, lessOrEqual
        case and, or, xor
    }

    let kind: Kind
    /// Chosen at plan time by ``specialized(for:threadCount:)``.
    var layout: BroadcastLayout?
    /// `Pow`'s exponent converted to float32 at plan time when it is an integer constant.
    var floatExponent: Tensor?

    init(kind: Kind) { self.kind = kind }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...2)
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        let shape = try broadcastShape([a, b])
        switch kind {
        case .arithmetic(.power):
            guard a.dtype == .float32 else { throw .unsupportedDType(input: 0, a.dtype) }
            guard [.float32, .int64, .int32].contains(b.dtype) else { throw .unsupportedDType(input: 1, b.dtype) }
            return [ValueFact(dtype: .float32, shape: shape)]
        case .arithmetic:
            guard [.float32, .int64, .int32].contains(a.dtype) else { throw .unsupportedDType(input: 0, a.dtype) }
            guard b.dtype == a.dtype else { throw .dtypeMismatch(input: 1, expected: a.dtype, actual: b.dtype) }
            return [ValueFact(dtype: a.dtype, shape: shape)]
        case .equal, .greater, .less, .greaterOrEqual, .lessOrEqual:
            guard [.float32, .int64, .int32, .bool].contains(a.dtype) else {
                throw .unsupportedDType(input: 0, a.dtype)
            }
            guard b.dtype == a.dtype else { throw .dtypeMismatch(input: 1, expected: a.dtype, actual: b.dtype) }
            return [ValueFact(dtype: .bool, shape: shape)]
        case .and, .or, .xor:
            guard a.dtype == .bool else { throw .unsupportedDType(input: 0, a.dtype) }
            guard b.dtype == .bool else { throw .dtypeMismatch(input: 1, expected: .bool, actual: b.dtype) }
            return [ValueFact(dtype: .bool, shape: shape)]
        }
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        var result = self
        result.layout = try broadcastLayout([a.shape, b.shape])
        if case .arithmetic(.power) = kind, b.dtype != .float32, let exponent = b.constant {
            do throws(TensorError) {
                let converted = try Tensor(zeros: exponent.shape, dtype: .float32)
                castElements(
                    exponent.rawPointer, from: exponent.dtype, to: converted.rawPointer, .float32,
                    count: exponent.elementCount)
                result.floatExponent = converted
            } catch { throw .tensor(error) }
        }
        return result
    }

    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int {
        // A non-constant integer exponent is widened to float32 in the workspace.
        guard case .arithmetic(.power) = kind, let b = inputs.optional(1), b.dtype != .float32, b.constant == nil
        else { return 0 }
        return b.shape.elementCount * 4
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        let output = outputs[0]
        let layout: BroadcastLayout
        if let planned = self.layout { layout = planned } else { layout = try broadcastLayout([a.shape, b.shape]) }
        if layout.elementCount == 0 { return }
        switch kind {
        case .arithmetic(let operation):
            switch a.dtype {
            case .float32:
                var exponent = b.rawPointer.assumingMemoryBound(to: Float.self)
                if operation == .power, b.dtype != .float32 {
                    if let floatExponent {
                        exponent = floatExponent.pointer(as: Float.self)
                    } else {
                        guard let workspace = context.workspace, context.workspaceByteCount >= b.elementCount * 4 else {
                            throw .unsupported("Pow with a non-constant integer exponent needs a planned workspace")
                        }
                        exponent = workspace.assumingMemoryBound(to: Float.self)
                        castElements(b.rawPointer, from: b.dtype, to: workspace, .float32, count: b.elementCount)
                    }
                }
                if operation == .power, b.elementCount == 1, a.shape == output.shape,
                    let special = Self.powerFastPath(exponent.pointee)
                {
                    unaryFloat32(
                        special, a.pointer(as: Float.self), output: output.pointer(as: Float.self),
                        count: a.elementCount, context: context)
                    return
                }
                binaryFloat32(
                    operation, a.pointer(as: Float.self), exponent, output: output.pointer(as: Float.self),
                    layout: layout, context: context)
            case .int64: Self.integerArithmetic(operation, Int64.self, a, b, output, layout, context)
            case .int32: Self.integerArithmetic(operation, Int32.self, a, b, output, layout, context)
            default: throw .unsupportedDType(input: 0, a.dtype)
            }
        case .equal: try Self.compare(a, b, output, layout, context, ==, ==, ==, ==)
        case .greater: try Self.compare(a, b, output, layout, context, >, >, >, { $0 && !$1 })
        case .less: try Self.compare(a, b, output, layout, context, <, <, <, { !$0 && $1 })
        case .greaterOrEqual: try Self.compare(a, b, output, layout, context, >=, >=, >=, { $0 || !$1 })
        case .lessOrEqual: try Self.compare(a, b, output, layout, context, <=, <=, <=, { !$0 || $1 })
        case .and: Self.logic(a, b, output, layout, context) { $0 && $1 }
        case .or: Self.logic(a, b, output, layout, context) { $0 || $1 }
        case .xor: Self.logic(a, b, output, layout, context) { $0 != $1 }
        }
    }

    /// `x^2`, `x^1`, `x^0.5` as cheaper functions that give the same results as `powf`.
    static func powerFastPath(_ exponent: Float) -> UnaryFloatOperation? {
        // x·x is the correctly rounded square, which is what powf returns for exponent 2.
        if exponent == 2 { return .square }
        if exponent == 1 { return .identity }
        if exponent == 0.5 { return .powerOneHalf }
        return nil
    }

    static func integerArithmetic<T: FixedWidthInteger & TensorScalar>(
        _ operation: BinaryFloatOperation, _: T.Type, _ a: Tensor, _ b: Tensor, _ output: Tensor,
        _ layout: BroadcastLayout, _ context: ComputeContext
    ) {
        let x = UnsafePointer(a.pointer(as: T.self))
        let y = UnsafePointer(b.pointer(as: T.self))
        let z = output.pointer(as: T.self)
        // Integer arithmetic wraps on overflow (two's complement), as in C.
        switch operation {
        case .add: broadcastMap(x, y, output: z, layout: layout, context: context) { $0 &+ $1 }
        case .subtract: broadcastMap(x, y, output: z, layout: layout, context: context) { $0 &- $1 }
        case .multiply: broadcastMap(x, y, output: z, layout: layout, context: context) { $0 &* $1 }
        case .divide: broadcastMap(x, y, output: z, layout: layout, context: context) { truncatingDivide($0, $1) }
        case .maximum: broadcastMap(x, y, output: z, layout: layout, context: context) { max($0, $1) }
        case .minimum: broadcastMap(x, y, output: z, layout: layout, context: context) { min($0, $1) }
        case .power: break  // rejected by outputFacts
        }
    }

    static func compare(
        _ a: Tensor, _ b: Tensor, _ output: Tensor, _ layout: BroadcastLayout, _ context: ComputeContext,
        _ float: (Float, Float) -> Bool, _ int64: (Int64, Int64) -> Bool, _ int32: (Int32, Int32) -> Bool,
        _ bool: (Bool, Bool) -> Bool
    ) throws(OperatorError) {
        let z = output.pointer(as: Bool.self)
        switch a.dtype {
        case .float32:
            broadcastMap(
                UnsafePointer(a.pointer(as: Float.self)), UnsafePointer(b.pointer(as: Float.self)), output: z,
                layout: layout, context: context, float)
        case .int64:
            broadcastMap(
                UnsafePointer(a.pointer(as: Int64.self)), UnsafePointer(b.pointer(as: Int64.self)), output: z,
                layout: layout, context: context, int64)
        case .int32:
            broadcastMap(
                UnsafePointer(a.pointer(as: Int32.self)), UnsafePointer(b.pointer(as: Int32.self)), output: z,
                layout: layout, context: context, int32)
        case .bool:
            broadcastMap(
                UnsafePointer(a.pointer(as: Bool.self)), UnsafePointer(b.pointer(as: Bool.self)), output: z,
                layout: layout, context: context, bool)
        default: throw .unsupportedDType(input: 0, a.dtype)
        }
    }

    static func logic(
        _ a: Tensor, _ b: Tensor, _ output: Tensor, _ layout: BroadcastLayout, _ context: ComputeContext,
        _ function: (Bool, Bool) -> Bool
    ) {
        broadcastMap(
            UnsafePointer(a.pointer(as: Bool.self)), UnsafePointer(b.pointer(as: Bool.self)),
            output: output.pointer(as: Bool.self), layout: layout, context: context, function)
    }
}

/// Variadic `Sum`, `Mean`, `Max`, `Min` (float32; `Max`/`Min` also int64/int32): all inputs
/// broadcast together; the first is broadcast into the output, then the others are folded in place.
struct VariadicElementwise: Operator {
    enum Kind: Sendable { case sum, mean, max, min }
    let kind: Kind

    var operation: BinaryFloatOperation {
        switch kind {
        case .sum, .mean: .add
        case .max: .maximum
        case .min: .minimum
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        guard !inputs.isEmpty else { throw .inputCount(expected: 1...Int.max, actual: 0) }
        var facts = [ValueFact]()
        for index in inputs.indices { facts.append(try inputs.required(index)) }
        let dtype = facts[0].dtype
        let allowed: [DType] = (kind == .sum || kind == .mean) ? [.float32] : [.float32, .int64, .int32]
        guard allowed.contains(dtype) else { throw .unsupportedDType(input: 0, dtype) }
        for (index, fact) in facts.enumerated() where fact.dtype != dtype {
            throw .dtypeMismatch(input: index, expected: dtype, actual: fact.dtype)
        }
        return [ValueFact(dtype: dtype, shape: try broadcastShape(facts))]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let output = outputs[0]
        if output.elementCount == 0 { return }
        for index in inputs.indices {
            let input = try inputs.required(index)
            // Fold into the output: the first input combined with itself through `first`, which
            // only ever returns its first argument, broadcasts it into place.
            let layout = try broadcastLayout([output.shape, input.shape])
            switch output.dtype {
            case .float32:
                let x = UnsafePointer(output.pointer(as: Float.self))
                let y = UnsafePointer(input.pointer(as: Float.self))
                let z = output.pointer(as: Float.self)
                if index == 0 {
                    let copyLayout = try broadcastLayout([input.shape, output.shape])
                    broadcastMap(y, x, output: z, layout: copyLayout, context: context) { value, _ in value }
                } else {
                    binaryFloat32(operation, x, y, output: z, layout: layout, context: context)
                }
            case .int64: try Self.foldInteger(Int64.self, kind, index, input, output, context)
            case .int32: try Self.foldInteger(Int32.self, kind, index, input, output, context)
            default: throw .unsupportedDType(input: index, output.dtype)
            }
        }
        if kind == .mean {
            let scale = Float(inputs.count)
            let z = output.pointer(as: Float.self)
            for index in 0..<output.elementCount { z[index] /= scale }
        }
    }

    static func foldInteger<T: FixedWidthInteger & TensorScalar>(
        _: T.Type, _ kind: Kind, _ index: Int, _ input: Tensor, _ output: Tensor, _ context: ComputeContext
    ) throws(OperatorError) {
        let x = UnsafePointer(output.pointer(as: T.self))
        let y = UnsafePointer(input.pointer(as: T.self))
        let z = output.pointer(as: T.self)
        if index == 0 {
            broadcastMap(y, x, output: z, layout: try broadcastLayout([input.shape, output.shape]), context: context) {
                value, _ in value
            }
            return
        }
        let layout = try broadcastLayout([output.shape, input.shape])
        if kind == .max {
            broadcastMap(x, y, output: z, layout: layout, context: context) { Swift.max($0, $1) }
        } else {
            broadcastMap(x, y, output: z, layout: layout, context: context) { Swift.min($0, $1) }
        }
    }
}

/// `Where(condition, X, Y)`: `X` where the condition holds, else `Y`, all three broadcast together.
struct Where: Operator {
    var layout: BroadcastLayout?

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(3...3)
        let condition = try inputs.required(0)
        let x = try inputs.required(1)
        let y = try inputs.required(2)
        guard condition.dtype == .bool else { throw .unsupportedDType(input: 0, condition.dtype) }
        guard y.dtype == x.dtype else { throw .dtypeMismatch(input: 2, expected: x.dtype, actual: y.dtype) }
        return [ValueFact(dtype: x.dtype, shape: try broadcastShape([condition, x, y]))]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        var result = self
        result.layout = try broadcastLayout([
            try inputs.required(0).shape, try inputs.required(1).shape, try inputs.required(2).shape,
        ])
        return result
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let condition = try inputs.required(0)
        let x = try inputs.required(1)
        let y = try inputs.required(2)
        let layout: BroadcastLayout
        if let planned = self.layout {
            layout = planned
        } else {
            layout = try broadcastLayout([condition.shape, x.shape, y.shape])
        }
        if layout.elementCount == 0 { return }
        let c = UnsafePointer(condition.pointer(as: Bool.self))
        // Selection only moves bytes, so one kernel per element size serves every dtype.
        func select<T>(_: T.Type) {
            broadcastSelect(
                c, UnsafePointer(x.rawPointer.assumingMemoryBound(to: T.self)),
                UnsafePointer(y.rawPointer.assumingMemoryBound(to: T.self)),
                output: outputs[0].rawPointer.assumingMemoryBound(to: T.self), layout: layout, context: context)
        }
        switch x.dtype.byteSize {
        case 1: select(UInt8.self)
        case 2: select(UInt16.self)
        case 4: select(UInt32.self)
        default: select(UInt64.self)
        }
    }
}

/// `Not`: logical negation of a bool tensor.
struct Not: Operator {
    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        let x = try inputs.required(0)
        guard x.dtype == .bool else { throw .unsupportedDType(input: 0, x.dtype) }
        return [x.withoutConstant]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let source = x.pointer(as: Bool.self)
        let destination = outputs[0].pointer(as: Bool.self)
        for index in 0..<x.elementCount { destination[index] = !source[index] }
    }
}

extension ValueFact {
    /// The same dtype and shape, value unknown.
    var withoutConstant: ValueFact { ValueFact(dtype: dtype, shape: shape) }
}
