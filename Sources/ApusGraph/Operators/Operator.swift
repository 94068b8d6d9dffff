import ApusOps
import ApusTensor

/// What is known about a value at plan time: its element type, its shape and, when the value is
/// a constant (a weight, or computed from constants and shapes), the value itself.
public struct ValueFact: Sendable, CustomStringConvertible {
    /// The element type.
    public var dtype: DType
    /// The shape; always fully known at plan time, since plans are made per input-shape signature.
    public var shape: Shape
    /// The value, when it is known at plan time.
    public var constant: Tensor?

    public init(dtype: DType, shape: Shape, constant: Tensor? = nil) {
        self.dtype = dtype
        self.shape = shape
        self.constant = constant
    }

    /// The fact describing a known tensor.
    public init(constant: Tensor) {
        self.init(dtype: constant.dtype, shape: constant.shape, constant: constant)
    }

    public var description: String { "\(dtype)\(shape)" + (constant == nil ? "" : " (constant)") }
}

/// An executable operator: one shape rule plus one kernel call.
///
/// Operators are built from a ``Node`` by the factory in ``OperatorRegistry``, which reads and
/// validates attributes. The planner then calls ``outputFacts(_:)`` once per input-shape
/// signature, ``specialized(for:threadCount:)`` to choose kernels and prepack constant weights,
/// and ``run(_:outputs:context:)`` for every inference with outputs already allocated.
public protocol Operator: Sendable {
    /// The types and shapes of the outputs, given the facts about the inputs (`nil` marks an
    /// omitted optional input). An output fact may carry a `constant` when the operator can tell
    /// its value from shapes alone (`Shape`, `Size`).
    ///
    /// - Throws: ``OperatorError`` when inputs have the wrong count, dtype or shape.
    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact]

    /// Returns the operator to run for these input facts: the place to choose a kernel and to
    /// prepack constant weights. Called once per plan; the default returns `self`.
    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator

    /// Scratch bytes ``run(_:outputs:context:)`` needs in `context.workspace`; the default is 0.
    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int

    /// Computes the outputs into `outputs`, which have the shapes ``outputFacts(_:)`` returned.
    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError)
}

extension Operator {
    public func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        self
    }

    public func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int { 0 }
}

/// Helpers for the common checks of ``Operator/outputFacts(_:)``.
extension [ValueFact?] {
    /// Checks the number of inputs given (omitted trailing inputs count as absent).
    public func checkCount(_ range: ClosedRange<Int>) throws(OperatorError) {
        guard range.contains(count) else { throw .inputCount(expected: range, actual: count) }
    }

    /// The fact of a required input.
    public func required(_ index: Int) throws(OperatorError) -> ValueFact {
        guard index < count, let fact = self[index] else { throw .missingInput(index: index) }
        return fact
    }

    /// The fact of an optional input, `nil` when omitted.
    public func optional(_ index: Int) -> ValueFact? {
        index < count ? self[index] : nil
    }
}

extension [Tensor?] {
    /// A required input at run time (the planner guarantees presence for required inputs).
    public func required(_ index: Int) throws(OperatorError) -> Tensor {
        guard index < count, let tensor = self[index] else { throw .missingInput(index: index) }
        return tensor
    }

    /// An optional input at run time.
    public func optional(_ index: Int) -> Tensor? {
        index < count ? self[index] : nil
    }
}
