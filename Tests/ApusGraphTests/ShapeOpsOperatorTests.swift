import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

/// Runs one registered operator the way the planner does: facts first (inputs listed in
/// `constants` carry their values), then `run` into outputs of the planned shapes, once as built
/// and once specialized with 2 threads; both runs must give the same bytes.
func runLayoutOperator(
    _ opType: String, attributes: [String: Attribute] = [:], inputs: [Tensor?], constants: Set<Int> = [],
    outputCount: Int = 1, opset: Int = 18, sourceLocation: SourceLocation = #_sourceLocation
) throws -> [Tensor] {
    let node = Node(
        name: "node", opType: opType, inputs: inputs.indices.map { inputs[$0] == nil ? "" : "x\($0)" },
        outputs: (0..<outputCount).map { "y\($0)" }, attributes: attributes)
    let factory = try #require(OperatorRegistry.factory(opType: opType, domain: ""), sourceLocation: sourceLocation)
    let op = try factory(node, opset)
    let facts: [ValueFact?] = inputs.indices.map { index in
        inputs[index].map { tensor in
            ValueFact(dtype: tensor.dtype, shape: tensor.shape, constant: constants.contains(index) ? tensor : nil)
        }
    }
    let outputFacts = try op.outputFacts(facts)
    let outputs = try outputFacts.map { try Tensor(zeros: $0.shape, dtype: $0.dtype) }
    try op.run(inputs, outputs: outputs, context: ComputeContext(threadCount: 1))
    let specialized = try op.specialized(for: facts, threadCount: 2)
    let again = try outputFacts.map { try Tensor(zeros: $0.shape, dtype: $0.dtype) }
    try specialized.run(inputs, outputs: again, context: ComputeContext(threadCount: 2))
    for (first, second) in zip(outputs, again) {
        #expect(first.isBitwiseEqual(to: second), "specialized run differs", sourceLocation: sourceLocation)
    }
    return outputs
}

/// The output facts of one registered operator (for constants and errors raised at plan time).
func layoutOutputFacts(
    _ opType: String, attributes: [String: Attribute] = [:], inputs: [ValueFact?], outputCount: Int = 1
) throws -> [ValueFact] {
    let node = Node(
        name: "node", opType: opType, inputs: inputs.indices.map { "x\($0)" },
        outputs: (0..<outputCount).map { "y\($0)" }, attributes: attributes)
    guard let factory = OperatorRegistry.factory(opType: opType, domain: "") else { return [] }
    return try factory(node, 18).outputFacts(inputs)
}

/// `[0, 1, …, n−1]` as float32 in `shape`.
func arangeTensor(_ shape: [Int]) -> Tensor {
    let count = shape.reduce(1, *)
    return Tensor(shape: Shape(shape), scalars: (0..<count).map { Float($0) })
}

/// An int64 1-D tensor.
func int64Tensor(_ values: [Int64]) -> Tensor { Tensor(shape: [values.count], scalars: values) }

/// Checks a float32 tensor's shape and values.
func expectFloats(
    _ tensor: Tensor, shape: [Int], _ values: [Float], sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(tensor.shape.dimensions == shape, sourceLocation: sourceLocation)
    #expect((try? tensor.scalars(as: Float.self)) == values, sourceLocation: sourceLocation)
}

/// Checks that `body` throws an ``OperatorError`` whose message contains every fragment.
func expectOperatorError(
    containing fragments: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected an error containing \(fragments)", sourceLocation: sourceLocation)
    } catch {
        let message = "\(error)"
        for fragment in fragments {
            #expect(message.contains(fragment), "\(message) lacks \(fragment)", sourceLocation: sourceLocation)
        }
    }
}

@Suite struct ShapeOpsOperatorTests {
    @Test func flattenWithPositiveNegativeAndZeroAxis() throws {
        let x = arangeTensor([2, 3, 4])
        let values = (0..<24).map { Float($0) }
        expectFloats(try runLayoutOperator("Flatten", inputs: [x])[0], shape: [2, 12], values)
        expectFloats(
            try runLayoutOperator("Flatten", attributes: ["axis": .int(-1)], inputs: [x])[0], shape: [6, 4], values)
        expectFloats(
            try runLayoutOperator("Flatten", attributes: ["axis": .int(0)], inputs: [x])[0], shape: [1, 24], values)
        expectFloats(
            try runLayoutOperator("Flatten", attributes: ["axis": .int(3)], inputs: [x])[0], shape: [24, 1], values)
        expectOperatorError(containing: ["4", "[-3, 3]"]) {
            _ = try runLayoutOperator("Flatten", attributes: ["axis": .int(4)], inputs: [x])
        }
    }

    @Test func reshapeWithZeroAndMinusOne() throws {
        let x = arangeTensor([2, 3, 4])
        let values = (0..<24).map { Float($0) }
        // 0 copies dimension 0 (2); -1 is 24 / (2 · 3) = 4.
        let y = try runLayoutOperator("Reshape", inputs: [x, int64Tensor([0, 3, -1])], constants: [1])[0]
        expectFloats(y, shape: [2, 3, 4], values)
        expectFloats(
            try runLayoutOperator("Reshape", inputs: [x, int64Tensor([-1])], constants: [1])[0], shape: [24], values)
        expectOperatorError(containing: ["more than one -1"]) {
            _ = try runLayoutOperator("Reshape", inputs: [x, int64Tensor([-1, -1])], constants: [1])
        }
        expectOperatorError(containing: ["24 elements", "25"]) {
            _ = try runLayoutOperator("Reshape", inputs: [x, int64Tensor([5, 5])], constants: [1])
        }
        expectOperatorError(containing: ["must be a constant"]) {
            _ = try runLayoutOperator("Reshape", inputs: [x, int64Tensor([24])])
        }
        // allowzero = 1 keeps 0 as a size: an empty input reshapes to [0, 4].
        let empty = try Tensor(zeros: [0, 2, 2], dtype: .float32)
        let z = try runLayoutOperator(
            "Reshape", attributes: ["allowzero": .int(1)], inputs: [empty, int64Tensor([0, 4])], constants: [1])[0]
        #expect(z.shape == [0, 4])
        expectOperatorError(containing: ["both 0 and -1"]) {
            _ = try runLayoutOperator(
                "Reshape", attributes: ["allowzero": .int(1)], inputs: [empty, int64Tensor([0, -1])], constants: [1])
        }
    }

    @Test func squeezeAndUnsqueezeWithNegativeAxes() throws {
        let x = arangeTensor([1, 3, 1, 2])
        let values = (0..<6).map { Float($0) }
        expectFloats(try runLayoutOperator("Squeeze", inputs: [x])[0], shape: [3, 2], values)
        expectFloats(
            try runLayoutOperator("Squeeze", inputs: [x, int64Tensor([-2])], constants: [1])[0], shape: [1, 3, 2],
            values)
        expectFloats(
            try runLayoutOperator("Squeeze", attributes: ["axes": .ints([0])], inputs: [x], opset: 11)[0],
            shape: [3, 1, 2], values)
        expectOperatorError(containing: ["axis 1", "size 3"]) {
            _ = try runLayoutOperator("Squeeze", inputs: [x, int64Tensor([1])], constants: [1])
        }
        let y = arangeTensor([3, 2])
        // Output rank 5: axes 0 and -1 (= 4) are new.
        expectFloats(
            try runLayoutOperator("Unsqueeze", inputs: [y, int64Tensor([0, -1])], constants: [1])[0],
            shape: [1, 3, 2, 1], values)
        expectFloats(
            try runLayoutOperator("Unsqueeze", attributes: ["axes": .ints([1])], inputs: [y], opset: 11)[0],
            shape: [3, 1, 2], values)
        expectOperatorError(containing: ["repeats"]) {
            _ = try runLayoutOperator("Unsqueeze", inputs: [y, int64Tensor([0, -4])], constants: [1])
        }
    }

    @Test func shapeAndSizeAreConstantFacts() throws {
        let fact = ValueFact(dtype: .float32, shape: [2, 3, 5, 7])
        let all = try layoutOutputFacts("Shape", inputs: [fact])[0]
        #expect(try all.constant?.scalars(as: Int64.self) == [2, 3, 5, 7])
        // start -3 → 1, end -1 → 3: dims 1 and 2.
        let part = try layoutOutputFacts("Shape", attributes: ["start": .int(-3), "end": .int(-1)], inputs: [fact])[0]
        #expect(try part.constant?.scalars(as: Int64.self) == [3, 5])
        // Clamped: start 10 gives an empty shape.
        let none = try layoutOutputFacts("Shape", attributes: ["start": .int(10)], inputs: [fact])[0]
        #expect(none.shape == [0])
        let size = try layoutOutputFacts("Size", inputs: [fact])[0]
        #expect(try size.constant?.scalars(as: Int64.self) == [210])
        let run = try runLayoutOperator("Shape", attributes: ["start": .int(1)], inputs: [arangeTensor([2, 3, 4])])[0]
        #expect(try run.scalars(as: Int64.self) == [3, 4])
    }

    @Test func dropoutPassesThroughWithTrueMask() throws {
        let x = arangeTensor([2, 2])
        let outputs = try runLayoutOperator("Dropout", inputs: [x], outputCount: 2)
        expectFloats(outputs[0], shape: [2, 2], [0, 1, 2, 3])
        #expect(try outputs[1].scalars(as: Bool.self) == [true, true, true, true])
        expectOperatorError(containing: ["training_mode"]) {
            _ = try runLayoutOperator(
                "Dropout", inputs: [x, Tensor(scalar: Float(0.5)), Tensor(scalar: true)], constants: [1, 2])
        }
    }

    @Test func transpose3DAndDefaultPermutation() throws {
        // numpy: np.arange(24).reshape(2,3,4).transpose(0,2,1).flatten()
        let x = arangeTensor([2, 3, 4])
        let y = try runLayoutOperator("Transpose", attributes: ["perm": .ints([0, 2, 1])], inputs: [x])[0]
        expectFloats(
            y, shape: [2, 4, 3],
            [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 16, 20, 13, 17, 21, 14, 18, 22, 15, 19, 23])
        // Default reverses the axes: [[0, 1, 2], [3, 4, 5]] → [[0, 3], [1, 4], [2, 5]].
        expectFloats(
            try runLayoutOperator("Transpose", inputs: [arangeTensor([2, 3])])[0], shape: [3, 2], [0, 3, 1, 4, 2, 5])
        let bytes = Tensor(shape: [2, 2], scalars: [UInt8(1), 2, 3, 4])
        #expect(try runLayoutOperator("Transpose", inputs: [bytes])[0].scalars(as: UInt8.self) == [1, 3, 2, 4])
        expectOperatorError(containing: ["[0, 0, 1]", "not a permutation"]) {
            _ = try runLayoutOperator("Transpose", attributes: ["perm": .ints([0, 0, 1])], inputs: [x])
        }
    }

    @Test func concatNegativeAxisEmptyInputsAndInt64() throws {
        let a = arangeTensor([2, 2])
        let b = Tensor(shape: [2, 1], scalars: [Float(10), 11])
        let empty = try Tensor(zeros: [2, 0], dtype: .float32)
        // Hand-derived: rows [0, 1 | 10] and [2, 3 | 11].
        let y = try runLayoutOperator("Concat", attributes: ["axis": .int(-1)], inputs: [a, empty, b])[0]
        expectFloats(y, shape: [2, 3], [0, 1, 10, 2, 3, 11])
        let ints = try runLayoutOperator(
            "Concat", attributes: ["axis": .int(0)], inputs: [int64Tensor([1, 2]), int64Tensor([]), int64Tensor([3])])[
                0]
        #expect(try ints.scalars(as: Int64.self) == [1, 2, 3])
        expectOperatorError(containing: ["[2, 2]", "[3, 1]"]) {
            _ = try runLayoutOperator("Concat", attributes: ["axis": .int(1)], inputs: [a, arangeTensor([3, 1])])
        }
    }

    @Test func splitEvenUnevenAndBySizes() throws {
        let x = arangeTensor([2, 8])
        // numpy-style reference from onnx test_split_2d_uneven_split_opset18: sizes 3, 3, 2.
        let uneven = try runLayoutOperator(
            "Split", attributes: ["axis": .int(1), "num_outputs": .int(3)], inputs: [x], outputCount: 3)
        expectFloats(uneven[0], shape: [2, 3], [0, 1, 2, 8, 9, 10])
        expectFloats(uneven[1], shape: [2, 3], [3, 4, 5, 11, 12, 13])
        expectFloats(uneven[2], shape: [2, 2], [6, 7, 14, 15])
        let sized = try runLayoutOperator(
            "Split", attributes: ["axis": .int(-1)], inputs: [x, int64Tensor([1, 0, 7])], constants: [1], outputCount: 3
        )
        expectFloats(sized[0], shape: [2, 1], [0, 8])
        #expect(sized[1].shape == [2, 0])
        expectFloats(sized[2], shape: [2, 7], [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15])
        let rows = try runLayoutOperator(
            "Split", attributes: ["split": .ints([1, 1])], inputs: [x], outputCount: 2, opset: 11)
        expectFloats(rows[1], shape: [1, 8], [8, 9, 10, 11, 12, 13, 14, 15])
        expectOperatorError(containing: ["[2, 2]", "summing to 8"]) {
            _ = try runLayoutOperator(
                "Split", attributes: ["axis": .int(1)], inputs: [x, int64Tensor([2, 2])], constants: [1], outputCount: 2
            )
        }
    }

    @Test func sliceNegativeStepsAndClampedEnds() throws {
        let x = arangeTensor([4, 5])
        // numpy: b[3:0:-2, ::-1] with b = np.arange(20).reshape(4, 5); INT64_MIN end means "to the front".
        let reversed = try runLayoutOperator(
            "Slice",
            inputs: [
                x, int64Tensor([3, -1]), int64Tensor([0, Int64.min]), int64Tensor([0, 1]), int64Tensor([-2, -1]),
            ],
            constants: [1, 2, 3, 4])[0]
        expectFloats(reversed, shape: [2, 5], [19, 18, 17, 16, 15, 9, 8, 7, 6, 5])
        // numpy: b[1:1000, -100:-1]; INT64_MAX end clamps like 1000.
        let clamped = try runLayoutOperator(
            "Slice", inputs: [x, int64Tensor([1, -100]), int64Tensor([Int64.max, -1])], constants: [1, 2])[0]
        expectFloats(clamped, shape: [3, 4], [5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18])
        // numpy: b[-1::-1, 4:-6:-3] (axes given negative: -2, -1).
        let both = try runLayoutOperator(
            "Slice",
            inputs: [
                x, int64Tensor([-1, 4]), int64Tensor([Int64.min, -6]), int64Tensor([-2, -1]), int64Tensor([-1, -3]),
            ],
            constants: [1, 2, 3, 4])[0]
        expectFloats(both, shape: [4, 2], [19, 16, 14, 11, 9, 6, 4, 1])
        // start 3 past end 1 on axis 1: empty.
        let empty = try runLayoutOperator(
            "Slice", inputs: [x, int64Tensor([3]), int64Tensor([1]), int64Tensor([1])], constants: [1, 2, 3])[0]
        #expect(empty.shape == [4, 0])
        // Opset 1 attributes.
        let old = try runLayoutOperator(
            "Slice", attributes: ["starts": .ints([1]), "ends": .ints([3]), "axes": .ints([1])], inputs: [x], opset: 9)[
                0]
        expectFloats(old, shape: [4, 2], [1, 2, 6, 7, 11, 12, 16, 17])
        expectOperatorError(containing: ["step is 0"]) {
            _ = try runLayoutOperator(
                "Slice", inputs: [x, int64Tensor([0]), int64Tensor([1]), int64Tensor([0]), int64Tensor([0])],
                constants: [1, 2, 3, 4])
        }
        expectOperatorError(containing: ["axes", "2", "[-2, 1]"]) {
            _ = try runLayoutOperator(
                "Slice", inputs: [x, int64Tensor([0]), int64Tensor([1]), int64Tensor([2])], constants: [1, 2, 3])
        }
    }

    @Test func emptyShapesWithOverflowingStridesAreRefusedAtPlanTime() {
        // No elements, but 2^40 · 2^40 overflows the strides the kernels compute.
        let huge = ValueFact(dtype: .float32, shape: [0, 1 << 40, 1 << 40])
        for opType in ["Flatten", "Transpose"] {
            expectOperatorError(containing: ["strides", "overflow"]) {
                _ = try layoutOutputFacts(opType, inputs: [huge])
            }
        }
        expectOperatorError(containing: ["strides", "overflow"]) {
            _ = try layoutOutputFacts("Concat", attributes: ["axis": .int(0)], inputs: [huge, huge])
        }
    }
}
