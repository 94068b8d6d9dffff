import ApusOps
import ApusTensor

/// `ConvTranspose` over 1-D and 2-D NCHW float32 images: `group`, `strides`, `dilations`, `pads`,
/// `output_padding`, `output_shape` and `auto_pad`, with ONNX's output-size and padding rules.
/// Runs as GEMM plus col2im (``ConvTranspose2D``) with a column buffer in the workspace.
struct ConvTranspose: Operator {
    let autoPad: String
    let dilations: [Int]?
    let groups: Int
    let kernelShape: [Int]?
    let outputPadding: [Int]?
    let outputShape: [Int]?
    let pads: [Int]?
    let strides: [Int]?

    init(node: Node) throws(OperatorError) {
        autoPad = try node.string("auto_pad", default: "NOTSET")
        guard ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(autoPad) else {
            throw .invalidAttribute("auto_pad", reason: "unknown value '\(autoPad)'")
        }
        dilations = try node.ints("dilations")
        groups = try node.int("group", default: 1)
        kernelShape = try node.ints("kernel_shape")
        outputPadding = try node.ints("output_padding")
        outputShape = try node.ints("output_shape")
        pads = try node.ints("pads")
        strides = try node.ints("strides")
    }

    /// The geometry for these input and weight shapes, or an error naming the mismatch.
    func geometry(input: Shape, weight: Shape) throws(OperatorError) -> ConvTranspose2DGeometry {
        guard input.rank == 3 || input.rank == 4 else {
            throw .unsupported("ConvTranspose with \(input.rank - 2) spatial dimensions (1-D and 2-D only)")
        }
        guard weight.rank == input.rank else {
            throw .invalidShape("ConvTranspose weight \(weight) does not match input \(input)")
        }
        let spatial = input.rank - 2
        guard groups >= 1, input[1] % groups == 0, weight[0] == input[1] else {
            throw .invalidShape("ConvTranspose input \(input) and weight \(weight) do not fit group \(groups)")
        }
        func list(_ values: [Int]?, _ name: String, _ fallback: Int, count: Int) throws(OperatorError) -> [Int] {
            guard let values else { return Array(repeating: fallback, count: count) }
            guard values.count == count else {
                throw .invalidAttribute(name, reason: "has \(values.count) values, expected \(count)")
            }
            return values
        }
        let kernel = Array(weight.dimensions[2...])
        if let kernelShape, kernelShape != kernel {
            throw .invalidAttribute("kernel_shape", reason: "\(kernelShape) differs from the weight's \(kernel)")
        }
        let strides = try list(self.strides, "strides", 1, count: spatial)
        let dilations = try list(self.dilations, "dilations", 1, count: spatial)
        let outputPadding = try list(self.outputPadding, "output_padding", 0, count: spatial)
        var pads = try list(self.pads, "pads", 0, count: 2 * spatial)
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }) else {
            throw .invalidAttribute("strides", reason: "strides \(strides) and dilations \(dilations) must be positive")
        }
        var output: [Int] = []
        for axis in 0..<spatial {
            let full =
                strides[axis] * (input[axis + 2] - 1) + outputPadding[axis] + (kernel[axis] - 1) * dilations[axis] + 1
            var size = full - pads[axis] - pads[axis + spatial]
            var target: Int? = nil
            if let outputShape {
                guard outputShape.count == spatial else {
                    throw .invalidAttribute(
                        "output_shape", reason: "has \(outputShape.count) values, expected \(spatial)")
                }
                target = outputShape[axis]
            } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
                target = input[axis + 2] * strides[axis]
            }
            if let target {
                // ONNX: the total padding is split with the odd pixel at the end for SAME_UPPER,
                // at the start otherwise; floor division keeps a negative total (a larger output)
                // at the end.
                let total = full - target
                let half = total >= 0 ? total / 2 : -((-total + 1) / 2)
                if autoPad == "SAME_UPPER" {
                    (pads[axis], pads[axis + spatial]) = (half, total - half)
                } else {
                    (pads[axis], pads[axis + spatial]) = (total - half, half)
                }
                size = target
            }
            guard size >= 0 else { throw .invalidShape("ConvTranspose output size \(size) on axis \(axis + 2)") }
            output.append(size)
        }
        var columnBytes = MemoryLayout<Float>.size
        for factor in [weight[1], kernel.reduce(1, *), input.dimensions[2...].reduce(1, *)] {
            columnBytes = try LayoutSupport.product(columnBytes, factor, "ConvTranspose column buffer")
        }
        let twoD = spatial == 2
        return ConvTranspose2DGeometry(
            batch: input[0], inputChannels: input[1], outputChannels: weight[1] * groups, groups: groups,
            inputHeight: twoD ? input[2] : 1, inputWidth: input[input.rank - 1], outputHeight: twoD ? output[0] : 1,
            outputWidth: output[spatial - 1], kernelHeight: twoD ? kernel[0] : 1, kernelWidth: kernel[spatial - 1],
            strideHeight: twoD ? strides[0] : 1, strideWidth: strides[spatial - 1],
            dilationHeight: twoD ? dilations[0] : 1, dilationWidth: dilations[spatial - 1],
            padTop: twoD ? pads[0] : 0, padLeft: pads[spatial - 1])
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(2...3)
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        guard x.dtype == .float32 else { throw .unsupported("ConvTranspose of \(x.dtype) (float32 only)") }
        guard w.dtype == .float32 else { throw .dtypeMismatch(input: 1, expected: .float32, actual: w.dtype) }
        let g = try geometry(input: x.shape, weight: w.shape)
        if let b = inputs.optional(2) {
            guard b.dtype == .float32, b.shape.dimensions == [g.outputChannels] else {
                throw .invalidShape("ConvTranspose bias \(b.shape) must be [\(g.outputChannels)]")
            }
        }
        let dimensions =
            x.shape.rank == 4
            ? [g.batch, g.outputChannels, g.outputHeight, g.outputWidth] : [g.batch, g.outputChannels, g.outputWidth]
        return [ValueFact(dtype: .float32, shape: try LayoutSupport.shape(dimensions))]
    }

    func workspaceByteCount(for inputs: [ValueFact?], threadCount: Int) -> Int {
        guard let x = inputs.optional(0), let w = inputs.optional(1),
            let g = try? geometry(input: x.shape, weight: w.shape)
        else { return 0 }
        return g.columnFloatCount * MemoryLayout<Float>.size
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        let g = try geometry(input: x.shape, weight: w.shape)
        let bias = inputs.optional(2).map { $0.pointer(as: Float.self) }
        let output = outputs[0].pointer(as: Float.self)
        guard outputs[0].elementCount > 0 else { return }
        let bytes = g.columnFloatCount * MemoryLayout<Float>.size
        if let workspace = context.workspace, context.workspaceByteCount >= bytes {
            ConvTranspose2D.convTranspose2d(
                g, input: x.pointer(as: Float.self), weight: w.pointer(as: Float.self), bias: bias, output: output,
                columns: workspace.assumingMemoryBound(to: Float.self), context: context)
        } else {
            var columns = [Float](repeating: 0, count: g.columnFloatCount)
            columns.withUnsafeMutableBufferPointer { buffer in
                guard let base = buffer.baseAddress else {
                    ConvTranspose2D.convTranspose2dReference(
                        g, input: x.pointer(as: Float.self), weight: w.pointer(as: Float.self), bias: bias,
                        output: output)
                    return
                }
                ConvTranspose2D.convTranspose2d(
                    g, input: x.pointer(as: Float.self), weight: w.pointer(as: Float.self), bias: bias,
                    output: output, columns: base, context: context)
            }
        }
    }
}
