import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

@Suite struct ConstantsOperatorTests {
    @Test func constantAttributesBecomeConstantFacts() throws {
        let tensor = Tensor(shape: [2], scalars: [Int32(4), 5])
        let fromTensor = try layoutOutputFacts("Constant", attributes: ["value": .tensor(tensor)], inputs: [])[0]
        #expect(try fromTensor.constant?.scalars(as: Int32.self) == [4, 5])
        let float = try layoutOutputFacts("Constant", attributes: ["value_float": .float(1.5)], inputs: [])[0]
        #expect(float.shape == [])
        #expect(try float.constant?.scalars(as: Float.self) == [1.5])
        let floats = try layoutOutputFacts("Constant", attributes: ["value_floats": .floats([1, 2])], inputs: [])[0]
        #expect(try floats.constant?.scalars(as: Float.self) == [1, 2])
        let int = try layoutOutputFacts("Constant", attributes: ["value_int": .int(-3)], inputs: [])[0]
        #expect(int.dtype == .int64)
        #expect(try int.constant?.scalars(as: Int64.self) == [-3])
        let ints = try layoutOutputFacts("Constant", attributes: ["value_ints": .ints([7, 8, 9])], inputs: [])[0]
        #expect(ints.shape == [3])
        #expect(try ints.constant?.scalars(as: Int64.self) == [7, 8, 9])
        let run = try runLayoutOperator("Constant", attributes: ["value_ints": .ints([7, 8])], inputs: [])[0]
        #expect(try run.scalars(as: Int64.self) == [7, 8])
        expectOperatorError(containing: ["exactly one"]) {
            _ = try layoutOutputFacts("Constant", attributes: [:], inputs: [])
        }
        expectOperatorError(containing: ["value_string"]) {
            _ = try layoutOutputFacts("Constant", attributes: ["value_string": .string("a")], inputs: [])
        }
    }

    @Test func constantOfShapeFillsAndRefusesHugeOutputs() throws {
        let zeros = try runLayoutOperator("ConstantOfShape", inputs: [int64Tensor([2, 3])], constants: [0])[0]
        expectFloats(zeros, shape: [2, 3], [0, 0, 0, 0, 0, 0])
        let sevens = try runLayoutOperator(
            "ConstantOfShape", attributes: ["value": .tensor(Tensor(shape: [1], scalars: [Int64(7)]))],
            inputs: [int64Tensor([3])], constants: [0])[0]
        #expect(try sevens.scalars(as: Int64.self) == [7, 7, 7])
        // An empty shape gives a scalar.
        let scalar = try runLayoutOperator(
            "ConstantOfShape", attributes: ["value": .tensor(Tensor(shape: [1], scalars: [Float(2)]))],
            inputs: [int64Tensor([])], constants: [0])[0]
        expectFloats(scalar, shape: [], [2])
        // 2^40 float32 elements = 4 TiB, far over the default 4 GiB limit: refused before allocating.
        expectOperatorError(containing: ["ConstantOfShape", "4398046511104 bytes", "limit"]) {
            _ = try layoutOutputFacts(
                "ConstantOfShape", inputs: [ValueFact(constant: int64Tensor([1 << 20, 1 << 20]))])
        }
        expectOperatorError(containing: ["negative"]) {
            _ = try layoutOutputFacts("ConstantOfShape", inputs: [ValueFact(constant: int64Tensor([2, -1]))])
        }
    }

    @Test func rangeForFloatsAndIntegers() throws {
        // numpy: np.arange(10, 1, -3)
        let ints = try runLayoutOperator(
            "Range", inputs: [Tensor(scalar: Int64(10)), Tensor(scalar: Int64(1)), Tensor(scalar: Int64(-3))],
            constants: [0, 1, 2])[0]
        #expect(try ints.scalars(as: Int64.self) == [10, 7, 4])
        // numpy: np.arange(1, 5, 1.5, dtype=np.float32) = [1, 2.5, 4]
        let floats = try runLayoutOperator(
            "Range", inputs: [Tensor(scalar: Float(1)), Tensor(scalar: Float(5)), Tensor(scalar: Float(1.5))],
            constants: [0, 1, 2])[0]
        expectFloats(floats, shape: [3], [1, 2.5, 4])
        let empty = try runLayoutOperator(
            "Range", inputs: [Tensor(scalar: Int32(3)), Tensor(scalar: Int32(3)), Tensor(scalar: Int32(1))],
            constants: [0, 1, 2])[0]
        #expect(empty.shape == [0])
        expectOperatorError(containing: ["delta is 0"]) {
            _ = try runLayoutOperator(
                "Range", inputs: [Tensor(scalar: Int64(0)), Tensor(scalar: Int64(3)), Tensor(scalar: Int64(0))],
                constants: [0, 1, 2])
        }
    }
}
