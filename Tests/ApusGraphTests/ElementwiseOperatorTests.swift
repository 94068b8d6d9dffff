import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

/// Builds `opType` from the registry, plans it (output facts, specialization, workspace) and runs
/// it on `inputs`; inputs whose index is in `constants` are presented as plan-time constants.
func runElementwiseFamilyOperator(
    _ opType: String, opset: Int = 17, attributes: [String: Attribute] = [:], inputs: [Tensor?],
    constants: Set<Int> = [], outputCount: Int = 1, threads: Int = 1
) throws -> [Tensor] {
    guard let factory = OperatorRegistry.factory(opType: opType, domain: "") else {
        throw OperatorError.unsupported("\(opType) not registered")
    }
    let node = Node(
        name: "test", opType: opType, inputs: inputs.indices.map { "in\($0)" },
        outputs: (0..<outputCount).map { "out\($0)" }, attributes: attributes)
    let op = try factory(node, opset)
    let facts: [ValueFact?] = inputs.enumerated().map { index, tensor in
        tensor.map { constants.contains(index) ? ValueFact(constant: $0) : ValueFact(dtype: $0.dtype, shape: $0.shape) }
    }
    let outputFacts = try op.outputFacts(facts)
    let planned = try op.specialized(for: facts, threadCount: threads)
    let workspaceBytes = planned.workspaceByteCount(for: facts, threadCount: threads)
    let workspace = try TensorStorage(byteCount: workspaceBytes)
    let outputs = try outputFacts.map { try Tensor(zeros: $0.shape, dtype: $0.dtype) }
    try planned.run(
        inputs, outputs: outputs,
        context: ComputeContext(
            threadCount: threads, workspace: workspaceBytes > 0 ? workspace.baseAddress : nil,
            workspaceByteCount: workspaceBytes))
    return outputs
}

func floats(_ values: [Float], _ shape: Shape) -> Tensor { Tensor(shape: shape, scalars: values) }

@Suite struct ElementwiseOperatorTests {
    @Test func addBroadcastsPerChannelAndRankZero() throws {
        let x = floats((0..<12).map(Float.init), [1, 3, 2, 2])
        let bias = floats([10, 20, 30], [3, 1, 1])
        let y = try runElementwiseFamilyOperator("Add", inputs: [x, bias], constants: [1])[0]
        #expect(y.shape == [1, 3, 2, 2])
        #expect(try y.scalars(as: Float.self) == [10, 11, 12, 13, 24, 25, 26, 27, 38, 39, 40, 41])
        let scalar = try runElementwiseFamilyOperator("Mul", inputs: [Tensor(scalar: Float(2)), x])[0]
        #expect(try scalar.scalars(as: Float.self) == (0..<12).map { Float($0) * 2 })
        let both = try runElementwiseFamilyOperator(
            "Sub", inputs: [Tensor(scalar: Float(5)), Tensor(scalar: Float(7))])[0]
        #expect(both.shape == [])
        #expect(try both.scalars(as: Float.self) == [-2])
    }

    @Test func emptyTensorsGiveEmptyOutputs() throws {
        let empty = try Tensor(zeros: [2, 0, 3], dtype: .float32)
        let y = try runElementwiseFamilyOperator("Add", inputs: [empty, floats([1, 2, 3], [3])])[0]
        #expect(y.shape == [2, 0, 3])
        let relu = try runElementwiseFamilyOperator("Relu", inputs: [empty])[0]
        #expect(relu.elementCount == 0)
    }

    @Test func integerArithmeticFollowsOnnx() throws {
        let a = Tensor(shape: [4], scalars: [Int64(-7), 7, -7, 7])
        let b = Tensor(shape: [4], scalars: [Int64(2), -2, 2, -2])
        // numpy: np.trunc(a / b).astype(np.int64) → [-3, -3, -3, -3] (ONNX: truncation toward zero)
        #expect(
            try runElementwiseFamilyOperator("Div", inputs: [a, b])[0].scalars(as: Int64.self) == [-3, -3, -3, -3])
        #expect(try runElementwiseFamilyOperator("Add", inputs: [a, b])[0].scalars(as: Int64.self) == [-5, 5, -5, 5])
        let c = Tensor(shape: [2], scalars: [Int32(6), -6])
        #expect(
            try runElementwiseFamilyOperator("Mul", inputs: [c, Tensor(scalar: Int32(3))])[0].scalars(as: Int32.self)
                == [18, -18])
    }

    @Test func mismatchedDtypesAndShapesAreRejected() {
        let f = floats([1, 2], [2])
        let i = Tensor(shape: [2], scalars: [Int64(1), 2])
        #expect(throws: OperatorError.self) { try runElementwiseFamilyOperator("Add", inputs: [f, i]) }
        #expect(throws: OperatorError.self) {
            try runElementwiseFamilyOperator("Add", inputs: [f, floats([1, 2, 3], [3])])
        }
        do {
            _ = try runElementwiseFamilyOperator("Add", inputs: [f, i])
        } catch let error as OperatorError {
            guard case .dtypeMismatch(input: 1, expected: .float32, actual: .int64) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
        } catch { Issue.record("unexpected error \(error)") }
    }

    @Test func powUsesFastPathsAndIntegerExponents() throws {
        let x = floats([-2, -0.5, 0, 1.5, 3], [5])
        let square = try runElementwiseFamilyOperator("Pow", inputs: [x, Tensor(scalar: Float(2))], constants: [1])[0]
        #expect(try square.scalars(as: Float.self) == [4, 0.25, 0, 2.25, 9])
        let root = try runElementwiseFamilyOperator(
            "Pow", inputs: [floats([4, 2, 0], [3]), Tensor(scalar: Float(0.5))])[0]
        #expect(try root.scalars(as: Float.self) == [2, Float(2).squareRoot(), 0])
        // Integer exponent, constant (converted at plan time) and not (converted in the workspace).
        let exponent = Tensor(shape: [5], scalars: [Int64(3), 2, 1, 2, -1])
        let expected: [Float] = [-8, 0.25, 0, 2.25, Float(1) / 3]
        for constants in [Set([1]), []] {
            let y = try runElementwiseFamilyOperator("Pow", inputs: [x, exponent], constants: constants)[0]
            #expect(try y.scalars(as: Float.self) == expected)
        }
    }

    @Test func comparisonsAndLogicGiveBool() throws {
        let a = floats([1, 2, 3], [3])
        let b = floats([2], [1])
        #expect(
            try runElementwiseFamilyOperator("Equal", inputs: [a, b])[0].scalars(as: Bool.self) == [false, true, false])
        #expect(
            try runElementwiseFamilyOperator("Greater", inputs: [a, b])[0].scalars(as: Bool.self) == [
                false, false, true,
            ])
        #expect(
            try runElementwiseFamilyOperator("Less", inputs: [a, b])[0].scalars(as: Bool.self) == [true, false, false])
        let i = Tensor(shape: [3], scalars: [Int64(1), 5, 2])
        let j = Tensor(shape: [3], scalars: [Int64(1), 4, 3])
        #expect(
            try runElementwiseFamilyOperator("GreaterOrEqual", inputs: [i, j])[0].scalars(as: Bool.self) == [
                true, true, false,
            ])
        let p = Tensor(shape: [2, 1], scalars: [true, false])
        let q = Tensor(shape: [2], scalars: [true, false])
        #expect(
            try runElementwiseFamilyOperator("And", inputs: [p, q])[0].scalars(as: Bool.self) == [
                true, false, false, false,
            ])
        #expect(
            try runElementwiseFamilyOperator("Or", inputs: [p, q])[0].scalars(as: Bool.self) == [
                true, true, true, false,
            ])
        #expect(try runElementwiseFamilyOperator("Not", inputs: [q])[0].scalars(as: Bool.self) == [false, true])
    }

    @Test func whereBroadcastsAllThreeInputs() throws {
        let condition = Tensor(shape: [2, 1], scalars: [true, false])
        let x = Tensor(shape: [3], scalars: [Int64(1), 2, 3])
        let y = Tensor(scalar: Int64(-1))
        let out = try runElementwiseFamilyOperator("Where", inputs: [condition, x, y])[0]
        #expect(out.shape == [2, 3])
        #expect(try out.scalars(as: Int64.self) == [1, 2, 3, -1, -1, -1])
        let f = try runElementwiseFamilyOperator("Where", inputs: [condition, floats([1, 2], [2]), floats([9], [1])])[0]
        #expect(try f.scalars(as: Float.self) == [1, 2, 9, 9])
    }

    @Test func variadicOperatorsFoldAllInputs() throws {
        let a = floats([1, 5], [2])
        let b = floats([3], [1])
        let c = floats([0, 1, 2, 9], [2, 2])
        #expect(try runElementwiseFamilyOperator("Max", inputs: [a, b, c])[0].scalars(as: Float.self) == [3, 5, 3, 9])
        #expect(
            try runElementwiseFamilyOperator("Sum", inputs: [a, b, c])[0].scalars(as: Float.self) == [4, 9, 6, 17])
        #expect(try runElementwiseFamilyOperator("Mean", inputs: [a, b])[0].scalars(as: Float.self) == [2, 4])
        #expect(try runElementwiseFamilyOperator("Min", inputs: [c])[0].scalars(as: Float.self) == [0, 1, 2, 9])
    }

    @Test func castConvertsBetweenTypes() throws {
        let x = floats([1.5, -2.7, 0], [3])
        let toInt = try runElementwiseFamilyOperator("Cast", attributes: ["to": .int(7)], inputs: [x])[0]
        #expect(try toInt.scalars(as: Int64.self) == [1, -2, 0])
        let toBool = try runElementwiseFamilyOperator("Cast", attributes: ["to": .int(9)], inputs: [x])[0]
        #expect(try toBool.scalars(as: Bool.self) == [true, true, false])
        let like = try runElementwiseFamilyOperator("CastLike", inputs: [toInt, Tensor(scalar: Float(0))])[0]
        #expect(try like.scalars(as: Float.self) == [1, -2, 0])
        #expect(throws: OperatorError.self) {
            try runElementwiseFamilyOperator("Cast", attributes: ["to": .int(11)], inputs: [x])  // double
        }
    }
}
