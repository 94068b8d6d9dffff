import ApusOps
import ApusTensor
import Testing

@testable import ApusGraph

/// The deterministic test input the generator script also used:
/// `(((i * 7 + salt) % 11) - 5) / 5` over the flat index `i`.
func patterned(_ shape: Shape, salt: Int) -> Tensor {
    let count = shape.elementCount
    return Tensor(shape: shape, scalars: (0..<count).map { Float(((($0 * 7 + salt) % 11) - 5)) / 5 })
}

/// Plans and runs one node the way the planner does: factory, outputFacts, specialized,
/// workspace, run. Inputs given as constants are marked constant in their facts.
func runNode(
    _ node: Node, domain: String = "", inputs: [Tensor?], constants: Set<Int> = [], threads: Int = 1,
    opset: Int = 17
) throws -> [Tensor] {
    let factory = try #require(OperatorRegistry.factory(opType: node.opType, domain: domain))
    let op = try factory(node, opset)
    let facts: [ValueFact?] = inputs.enumerated().map { index, tensor in
        tensor.map { constants.contains(index) ? ValueFact(constant: $0) : ValueFact(dtype: $0.dtype, shape: $0.shape) }
    }
    let outputFacts = try op.outputFacts(facts)
    let specialized = try op.specialized(for: facts, threadCount: threads)
    let bytes = specialized.workspaceByteCount(for: facts, threadCount: threads)
    let workspace = try Tensor(zeros: [max(bytes, 1)], dtype: .uint8)
    let outputs = try outputFacts.map { try Tensor(zeros: $0.shape, dtype: $0.dtype) }
    try specialized.run(
        inputs, outputs: outputs,
        context: ComputeContext(threadCount: threads, workspace: workspace.rawPointer, workspaceByteCount: bytes))
    return outputs
}

func expectValues(
    _ tensor: Tensor, shape: [Int], _ expected: [Float], tolerance: Float = 1e-5,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    #expect(tensor.shape.dimensions == shape, sourceLocation: sourceLocation)
    let actual = try tensor.scalars(as: Float.self)
    #expect(actual.count == expected.count, sourceLocation: sourceLocation)
    for (index, (a, e)) in zip(actual, expected).enumerated() {
        #expect(
            abs(a - e) <= tolerance * max(1, abs(e)), "element \(index): \(a) vs \(e)", sourceLocation: sourceLocation)
    }
}

/// Expected values come from onnxruntime 1.x (CPUExecutionProvider) on the same patterned inputs,
/// printed with 6 significant digits by a small script during development.
@Suite struct ConvOperatorTests {
    init() throws { try BLAS.load() }

    @Test func conv1DWithAsymmetricPads() throws {
        let node = Node(
            name: "c", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
            attributes: ["strides": .ints([2]), "pads": .ints([1, 2])])
        let y = try runNode(
            node, inputs: [patterned([1, 2, 7], salt: 0), patterned([3, 2, 3], salt: 1), patterned([3], salt: 2)],
            constants: [1, 2])
        try expectValues(
            y[0], shape: [1, 3, 4], [-0.96, -0.24, -1.52, -0.2, 1, 0.04, 1.72, 0.68, -1, -1.44, 1.88, -0.2])
    }

    @Test func autoPadSameUpperAndLower() throws {
        let upper = Node(
            name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
            attributes: ["strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")])
        let y = try runNode(upper, inputs: [patterned([1, 1, 5, 5], salt: 0), patterned([1, 1, 3, 3], salt: 1)])
        try expectValues(y[0], shape: [1, 1, 3, 3], [-1.16, 0.32, -1.6, 0.2, 0.4, 1.64, 0.56, 0.6, -1.04])
        let lower = Node(
            name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
            attributes: ["auto_pad": .string("SAME_LOWER"), "kernel_shape": .ints([2, 2])])
        let z = try runNode(lower, inputs: [patterned([1, 1, 4, 4], salt: 0), patterned([1, 1, 2, 2], salt: 1)])
        try expectValues(
            z[0], shape: [1, 1, 4, 4],
            [1, -0.2, 0.32, -0.92, -0.8, 1.6, -1.24, 0.76, 0.92, -0.96, 1.04, 0.4, -0.88, 1.32, -1.52, -0.84])
    }

    /// Grouped, dilated, strided convolution with batch 2 against the scalar reference kernel.
    @Test(arguments: [1, 2])
    func groupedAgainstReference(threads: Int) throws {
        let x = patterned([2, 4, 9, 8], salt: 3)
        let w = patterned([6, 2, 3, 3], salt: 4)
        let b = patterned([6], salt: 5)
        let node = Node(
            name: "c", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
            attributes: [
                "group": .int(2), "strides": .ints([2, 1]), "dilations": .ints([1, 2]), "pads": .ints([1, 2, 0, 1]),
            ])
        let y = try runNode(node, inputs: [x, w, b], constants: [1, 2], threads: threads)
        let g = Conv2DGeometry(
            batch: 2, inputChannels: 4, inputHeight: 9, inputWidth: 8, outputChannels: 6, groups: 2, kernelHeight: 3,
            kernelWidth: 3, strideHeight: 2, strideWidth: 1, dilationHeight: 1, dilationWidth: 2, padTop: 1, padLeft: 2,
            padBottom: 0, padRight: 1)
        let expected = try Tensor(zeros: [2, 6, g.outputHeight, g.outputWidth], dtype: .float32)
        Conv2DReference.run(
            geometry: g, input: x.pointer(as: Float.self), weights: w.pointer(as: Float.self),
            bias: b.pointer(as: Float.self), residual: nil, output: expected.pointer(as: Float.self))
        try expectValues(y[0], shape: expected.shape.dimensions, try expected.scalars(as: Float.self))
    }

    @Test func fusedConvWithResidualAndActivation() throws {
        let x = patterned([1, 3, 6, 6], salt: 1)
        let w = patterned([3, 1, 3, 3], salt: 2)
        let z = patterned([1, 3, 6, 6], salt: 6)
        let node = Node(
            name: "f", opType: "FusedConv", domain: Node.apusDomain, inputs: ["x", "w", "", "z"], outputs: ["y"],
            attributes: [
                "group": .int(3), "pads": .ints([1, 1, 1, 1]), "activation": .string("Clip"),
                "activation_params": .floats([0, 0.5]),
            ])
        let y = try runNode(node, domain: Node.apusDomain, inputs: [x, w, nil, z], constants: [1])
        let g = Conv2DGeometry(
            batch: 1, inputChannels: 3, inputHeight: 6, inputWidth: 6, outputChannels: 3, groups: 3, kernelHeight: 3,
            kernelWidth: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        let expected = try Tensor(zeros: [1, 3, 6, 6], dtype: .float32)
        Conv2DReference.run(
            geometry: g, input: x.pointer(as: Float.self), weights: w.pointer(as: Float.self), bias: nil,
            residual: z.pointer(as: Float.self), output: expected.pointer(as: Float.self),
            activation: .clip(min: 0, max: 0.5))
        try expectValues(y[0], shape: [1, 3, 6, 6], try expected.scalars(as: Float.self))
    }

    @Test func rejectsBadShapes() throws {
        let factory = try #require(OperatorRegistry.onnx["Conv"])
        let conv = try factory(
            Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["group": .int(2)]), 17)
        let x = ValueFact(dtype: .float32, shape: [1, 4, 5, 5])
        #expect(throws: OperatorError.self) {
            try conv.outputFacts([x, ValueFact(dtype: .float32, shape: [4, 3, 3, 3])])
        }
        #expect(throws: OperatorError.self) {
            try conv.outputFacts([x, ValueFact(dtype: .float32, shape: [3, 2, 3, 3])])
        }
        #expect(throws: OperatorError.self) {
            try conv.outputFacts([x, ValueFact(dtype: .float32, shape: [4, 2, 7, 7])])
        }
        #expect(throws: OperatorError.self) {
            try conv.outputFacts([
                ValueFact(dtype: .float32, shape: [1, 4, 5, 5, 5]), ValueFact(dtype: .float32, shape: [4, 2, 3, 3, 3]),
            ])
        }
        #expect(throws: OperatorError.self) {
            try factory(
                Node(
                    name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                    attributes: ["auto_pad": .string("SAME")]), 17)
        }
        let fused = try #require(OperatorRegistry.apus["FusedConv"])
        #expect(throws: OperatorError.self) {
            try fused(
                Node(
                    name: "f", opType: "FusedConv", inputs: ["x", "w"], outputs: ["y"],
                    attributes: ["activation": .string("Gelu")]), 1)
        }
    }
}
