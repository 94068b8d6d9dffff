import ApusOps
import ApusTensor

/// `Identity`: the output is the input. (Also used for inference-mode `Dropout` when the
/// optimizer has not removed it.)
struct Identity: Operator {
    init(node: Node) throws(OperatorError) {}

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...1)
        return [try inputs.required(0)]
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let input = try inputs.required(0)
        outputs[0].rawPointer.copyMemory(from: input.rawPointer, byteCount: input.byteCount)
    }
}
