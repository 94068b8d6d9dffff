import ApusOps
import ApusTensor

/// `Cast` (and `CastLike`) between float32, float16, int64, int32, int8, uint8 and bool. See
/// ``castElements(_:from:to:_:count:)`` for rounding, NaN and overflow rules.
struct Cast: Operator {
    /// The target type; `nil` for `CastLike`, which takes it from input 1.
    let target: DType?

    /// `Cast`: reads the ONNX `to` attribute (a TensorProto data type code).
    init(node: Node) throws(OperatorError) {
        guard let code = try node.int("to") else { throw .missingAttribute("to") }
        guard let dtype = Self.dtype(onnxCode: code) else {
            throw .unsupported("Cast to ONNX data type \(code)")
        }
        target = dtype
    }

    /// `CastLike`.
    init() { target = nil }

    /// The dtype of an ONNX TensorProto.DataType code, when Apus has it.
    static func dtype(onnxCode: Int) -> DType? {
        switch onnxCode {
        case 1: .float32
        case 2: .uint8
        case 3: .int8
        case 6: .int32
        case 7: .int64
        case 9: .bool
        case 10: .float16
        default: nil
        }
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(target == nil ? 2...2 : 1...1)
        let x = try inputs.required(0)
        let dtype = if let target { target } else { try inputs.required(1).dtype }
        return [ValueFact(dtype: dtype, shape: x.shape)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        castElements(x.rawPointer, from: x.dtype, to: outputs[0].rawPointer, outputs[0].dtype, count: x.elementCount)
    }
}
