#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A float32 binary arithmetic operation with broadcasting.
public enum BinaryFloatOperation: Sendable, Equatable, CaseIterable {
    case add, subtract, multiply, divide, power, maximum, minimum

    /// The scalar result, the reference every vector path must match.
    @inline(__always)
    public func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: a + b
        case .subtract: a - b
        case .multiply: a * b
        case .divide: a / b
        case .power: powf(a, b)
        case .maximum: nanPropagatingMax(a, b)
        case .minimum: nanPropagatingMin(a, b)
        }
    }
}

/// numpy's `maximum`: NaN if either operand is NaN.
@inline(__always) func nanPropagatingMax(_ a: Float, _ b: Float) -> Float {
    a.isNaN || b.isNaN ? .nan : (a < b ? b : a)
}
/// numpy's `minimum`: NaN if either operand is NaN.
@inline(__always) func nanPropagatingMin(_ a: Float, _ b: Float) -> Float {
    a.isNaN || b.isNaN ? .nan : (a > b ? b : a)
}

/// Static dispatch of one operation, so each loop below is specialized per operation.
protocol BinaryFloatFunction {
    static func vector(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float>
    static func scalar(_ a: Float, _ b: Float) -> Float
}

enum AddFunction: BinaryFloatFunction {
    @inline(__always) static func vector(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a + b }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a + b }
}
enum SubtractFunction: BinaryFloatFunction {
    @inline(__always) static func vector(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a - b }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a - b }
}
enum MultiplyFunction: BinaryFloatFunction {
    @inline(__always) static func vector(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a * b }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a * b }
}
enum DivideFunction: BinaryFloatFunction {
    @inline(__always) static func vector(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a / b }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a / b }
}
enum PowerFunction: BinaryFloatFunction {
    @inline(__always) static func vector(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        var result = SIMD16<Float>()
        for lane in 0..<16 { result[lane] = powf(a[lane], b[lane]) }
        return result
    }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { powf(a, b) }
}
enum MaximumFunction: BinaryFloatFunction {
    @inline(__always) static func vector(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        // a where a >= b, else b; then NaN wherever either operand is NaN.
        var result = a.replacing(with: b, where: a .< b)
        result.replace(with: .nan, where: (a .!= a) .| (b .!= b))
        return result
    }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { nanPropagatingMax(a, b) }
}
enum MinimumFunction: BinaryFloatFunction {
    @inline(__always) static func vector(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        var result = a.replacing(with: b, where: a .> b)
        result.replace(with: .nan, where: (a .!= a) .| (b .!= b))
        return result
    }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { nanPropagatingMin(a, b) }
}

@inline(__always) func loadVector(_ pointer: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always) func storeVector(_ value: SIMD16<Float>, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD16<Float>.self)
}

/// One row: `aStride`/`bStride` are 1 (vector) or 0 (the same element repeated).
@inline(__always)
func binaryRow<F: BinaryFloatFunction>(
    _: F.Type, _ a: UnsafePointer<Float>, _ aStride: Int, _ b: UnsafePointer<Float>, _ bStride: Int,
    _ output: UnsafeMutablePointer<Float>, _ count: Int
) {
    var index = 0
    switch (aStride, bStride) {
    case (1, 1):
        while index + 16 <= count {
            storeVector(F.vector(loadVector(a + index), loadVector(b + index)), output + index)
            index += 16
        }
        while index < count {
            output[index] = F.scalar(a[index], b[index])
            index += 1
        }
    case (1, _):
        let scalarB = b.pointee
        let vectorB = SIMD16<Float>(repeating: scalarB)
        while index + 16 <= count {
            storeVector(F.vector(loadVector(a + index), vectorB), output + index)
            index += 16
        }
        while index < count {
            output[index] = F.scalar(a[index], scalarB)
            index += 1
        }
    case (_, 1):
        let scalarA = a.pointee
        let vectorA = SIMD16<Float>(repeating: scalarA)
        while index + 16 <= count {
            storeVector(F.vector(vectorA, loadVector(b + index)), output + index)
            index += 16
        }
        while index < count {
            output[index] = F.scalar(scalarA, b[index])
            index += 1
        }
    default:
        let value = F.scalar(a.pointee, b.pointee)
        output.update(repeating: value, count: count)
    }
}

func binaryFloat<F: BinaryFloatFunction>(
    _ function: F.Type, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
    _ layout: BroadcastLayout, _ context: ComputeContext
) {
    context.parallelFor(layout.taskCount, BinaryFloatRows<F>(a: a, b: b, output: output, layout: layout))
}

/// The rows of one layout task per task.
private struct BinaryFloatRows<F: BinaryFloatFunction>: ParallelTasks {
    let a: UnsafePointer<Float>
    let b: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let layout: BroadcastLayout

    func run(_ task: Int) {
        let aStride = layout.innerStrides[0]
        let bStride = layout.innerStrides[1]
        layout.forEachRow(task: task) { outputOffset, offsets, count in
            binaryRow(F.self, a + offsets.0, aStride, b + offsets.1, bStride, output + outputOffset, count)
        }
    }
}

/// Computes `output = a ⊙ b` elementwise with broadcasting (SIMD16 loops over contiguous rows).
///
/// - Parameters:
///   - layout: a two-operand layout of `a` and `b`; `output` holds `layout.elementCount` elements.
///   - context: parallelism; the work split depends only on the layout.
public func binaryFloat32(
    _ operation: BinaryFloatOperation, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
    output: UnsafeMutablePointer<Float>, layout: BroadcastLayout, context: ComputeContext
) {
    switch operation {
    case .add: binaryFloat(AddFunction.self, a, b, output, layout, context)
    case .subtract: binaryFloat(SubtractFunction.self, a, b, output, layout, context)
    case .multiply: binaryFloat(MultiplyFunction.self, a, b, output, layout, context)
    case .divide: binaryFloat(DivideFunction.self, a, b, output, layout, context)
    case .power: binaryFloat(PowerFunction.self, a, b, output, layout, context)
    case .maximum: binaryFloat(MaximumFunction.self, a, b, output, layout, context)
    case .minimum: binaryFloat(MinimumFunction.self, a, b, output, layout, context)
    }
}

/// The plain reference for ``binaryFloat32(_:_:_:output:layout:context:)``: walks every output
/// element by its multi-index, independent of the row layout.
public func binaryFloat32Reference(
    _ operation: BinaryFloatOperation, _ a: UnsafePointer<Float>, aDimensions: [Int], _ b: UnsafePointer<Float>,
    bDimensions: [Int], output: UnsafeMutablePointer<Float>
) {
    forEachBroadcastIndex(operandDimensions: [aDimensions, bDimensions]) { outputIndex, operandIndices in
        output[outputIndex] = operation.apply(a[operandIndices[0]], b[operandIndices[1]])
    }
}

/// Calls `body(outputIndex, operandIndices)` for every element of the broadcast output, in
/// row-major order, computing each operand's element index from the full multi-index. Slow and
/// simple: the reference for the fast broadcast paths.
public func forEachBroadcastIndex(operandDimensions: [[Int]], _ body: (Int, [Int]) -> Void) {
    guard let output = BroadcastLayout.broadcastDimensions(operandDimensions) else { return }
    let count = output.reduce(1, *)
    let rank = output.count
    for outputIndex in 0..<count {
        var remainder = outputIndex
        var multiIndex = [Int](repeating: 0, count: rank)
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            multiIndex[axis] = remainder % output[axis]
            remainder /= output[axis]
        }
        let indices = operandDimensions.map { shape in
            var index = 0
            let offset = rank - shape.count
            for (axis, dimension) in shape.enumerated() {
                index = index * dimension + (dimension == 1 ? 0 : multiIndex[offset + axis])
            }
            return index
        }
        body(outputIndex, indices)
    }
}

/// Computes `output[i] = function(a[·], b[·])` with broadcasting for any element types: the path
/// for integer arithmetic and comparisons, where the operation is cheap next to memory traffic.
///
/// Hands `function` to the threads as a closure, so with more than one thread it heap-allocates
/// per call (see ``ComputeContext/parallelFor(_:_:)``); none of the float32 hot paths use it.
@inlinable
public func broadcastMap<A, B, Output>(
    _ a: UnsafePointer<A>, _ b: UnsafePointer<B>, output: UnsafeMutablePointer<Output>, layout: BroadcastLayout,
    context: ComputeContext, _ function: (A, B) -> Output
) {
    let aStride = layout.innerStrides[0]
    let bStride = layout.innerStrides[1]
    context.parallelFor(layout.taskCount) { task in
        layout.forEachRow(task: task) { outputOffset, offsets, count in
            let rowA = a + offsets.0
            let rowB = b + offsets.1
            let rowOutput = output + outputOffset
            for index in 0..<count { rowOutput[index] = function(rowA[index * aStride], rowB[index * bStride]) }
        }
    }
}

/// Computes `output[i] = condition[·] ? x[·] : y[·]` with three-way broadcasting (ONNX `Where`).
@inlinable
public func broadcastSelect<Element>(
    _ condition: UnsafePointer<Bool>, _ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>,
    output: UnsafeMutablePointer<Element>, layout: BroadcastLayout, context: ComputeContext
) {
    context.parallelFor(
        layout.taskCount, BroadcastSelectRows(condition: condition, x: x, y: y, output: output, layout: layout))
}

/// The rows of one layout task per task, for ``broadcastSelect(_:_:_:output:layout:context:)``.
@usableFromInline
struct BroadcastSelectRows<Element>: ParallelTasks {
    @usableFromInline let condition: UnsafePointer<Bool>
    @usableFromInline let x: UnsafePointer<Element>
    @usableFromInline let y: UnsafePointer<Element>
    @usableFromInline let output: UnsafeMutablePointer<Element>
    @usableFromInline let layout: BroadcastLayout

    @inlinable
    init(
        condition: UnsafePointer<Bool>, x: UnsafePointer<Element>, y: UnsafePointer<Element>,
        output: UnsafeMutablePointer<Element>, layout: BroadcastLayout
    ) {
        self.condition = condition
        self.x = x
        self.y = y
        self.output = output
        self.layout = layout
    }

    @inlinable
    func run(_ task: Int) {
        let conditionStride = layout.innerStrides[0]
        let xStride = layout.innerStrides[1]
        let yStride = layout.innerStrides[2]
        layout.forEachRow(task: task) { outputOffset, offsets, count in
            let rowCondition = condition + offsets.0
            let rowX = x + offsets.1
            let rowY = y + offsets.2
            let rowOutput = output + outputOffset
            for index in 0..<count {
                rowOutput[index] = rowCondition[index * conditionStride] ? rowX[index * xStride] : rowY[index * yStride]
            }
        }
    }
}

/// ONNX integer `Div`: the quotient truncated toward zero (C semantics). Division by zero, which
/// ONNX leaves undefined, gives 0 instead of trapping; `min / -1` wraps to `min`.
@inlinable
public func truncatingDivide<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
    if b == 0 { return 0 }
    return a.dividedReportingOverflow(by: b).partialValue
}
