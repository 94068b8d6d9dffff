import ApusOps
import ApusTensor

/// `Resize` (opsets 10–19) and `Upsample` (opset 9): float32 interpolation by nearest, linear or
/// cubic taps along every axis whose size or scale changes. `scales`, `sizes` and (for
/// `tf_crop_and_resize`) `roi` decide the output shape, so they must be known at plan time; the
/// per-axis tap tables are built once in ``specialized(for:threadCount:)``.
struct ResizeOperator: Operator {
    /// The position of `scales`, `sizes` and `roi` among the inputs (`nil`: not an input).
    let scalesInput: Int
    let sizesInput: Int?
    let roiInput: Int?
    let mode: Resize.Mode
    /// The coordinate transformation, without the `roi` values (read from the input).
    let transformation: String
    let excludeOutside: Bool
    let extrapolationValue: Float
    let antialias: Bool
    let axes: [Int]?
    let keepAspectRatioPolicy: String
    /// Tap tables and output shape, when prepared for one input shape.
    var prepared: (shape: [Int], tables: [Resize.AxisTable])?

    /// `Resize` of any opset from 10.
    init(node: Node, opset: Int) throws(OperatorError) {
        let modeName = try node.string("mode", default: "nearest")
        if opset < 11 {
            // Resize-10 is Upsample-9 renamed: asymmetric coordinates, ONNX Runtime's nearest rule.
            scalesInput = 1
            sizesInput = nil
            roiInput = nil
            transformation = "asymmetric"
            mode = try Self.mode(modeName, nearest: .simple, cubicA: -0.75, allowCubic: false)
            (excludeOutside, extrapolationValue, antialias, axes, keepAspectRatioPolicy) = (
                false, 0, false, nil, "stretch"
            )
            return
        }
        scalesInput = 2
        sizesInput = 3
        roiInput = 1
        transformation = try node.string("coordinate_transformation_mode", default: "half_pixel")
        let known = [
            "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
            "tf_crop_and_resize", "tf_half_pixel_for_nn",
        ]
        guard known.contains(transformation) else {
            throw .invalidAttribute("coordinate_transformation_mode", reason: "unknown value '\(transformation)'")
        }
        let nearest: Resize.NearestRounding
        switch try node.string("nearest_mode", default: "round_prefer_floor") {
        case "round_prefer_floor": nearest = .roundPreferFloor
        case "round_prefer_ceil": nearest = .roundPreferCeil
        case "floor": nearest = .floor
        case "ceil": nearest = .ceil
        case let other: throw .invalidAttribute("nearest_mode", reason: "unknown value '\(other)'")
        }
        mode = try Self.mode(
            modeName, nearest: nearest, cubicA: Double(try node.float("cubic_coeff_a", default: -0.75)),
            allowCubic: true)
        excludeOutside = try node.int("exclude_outside", default: 0) != 0
        extrapolationValue = try node.float("extrapolation_value", default: 0)
        antialias = try node.int("antialias", default: 0) != 0
        if antialias, case .nearest = mode {
            throw .invalidAttribute("antialias", reason: "is not defined for mode 'nearest'")
        }
        axes = try node.ints("axes")
        keepAspectRatioPolicy = try node.string("keep_aspect_ratio_policy", default: "stretch")
        guard ["stretch", "not_larger", "not_smaller"].contains(keepAspectRatioPolicy) else {
            throw .invalidAttribute("keep_aspect_ratio_policy", reason: "unknown value '\(keepAspectRatioPolicy)'")
        }
    }

    /// `Upsample`-9 (`scales` as input 1); opset 7's `scales` attribute is refused.
    static func upsample(node: Node, opset: Int) throws(OperatorError) -> ResizeOperator {
        guard opset >= 9 else { throw .unsupported("Upsample before opset 9 (scales as an attribute)") }
        return try ResizeOperator(node: node, opset: 10)
    }

    private static func mode(
        _ name: String, nearest: Resize.NearestRounding, cubicA: Double, allowCubic: Bool
    ) throws(OperatorError) -> Resize.Mode {
        switch name {
        case "nearest": return .nearest(nearest)
        case "linear", "bilinear", "trilinear": return .linear
        case "cubic" where allowCubic: return .cubic(a: cubicA)
        default: throw .invalidAttribute("mode", reason: "unknown value '\(name)'")
        }
    }

    /// Reads an input that decides the output, from plan-time facts; `nil` when omitted or empty.
    private static func constant(_ inputs: [ValueFact?], _ index: Int?) throws(OperatorError) -> Tensor?? {
        guard let index, let fact = inputs.optional(index), fact.shape.elementCount > 0 else { return .some(nil) }
        guard let value = fact.constant else { return nil }
        return .some(value)
    }

    private static func floats(_ tensor: Tensor, input: Int) throws(OperatorError) -> [Double] {
        switch tensor.dtype {
        case .float32: return tensor.withUnsafeBufferPointer(as: Float.self) { $0.map(Double.init) }
        case .float16: return tensor.withUnsafeBufferPointer(as: Float16.self) { $0.map(Double.init) }
        default: throw .unsupported("\(tensor.dtype) for input \(input) of Resize")
        }
    }

    /// The output shape and tap tables for an input shape and the shape-deciding inputs.
    func plan(inputShape: [Int], scales: Tensor?, sizes: Tensor?, roi: Tensor?) throws(OperatorError) -> (
        shape: [Int], tables: [Resize.AxisTable]
    ) {
        let rank = inputShape.count
        let axes = try LayoutSupport.distinctAxes(self.axes ?? Array(0..<rank), rank: rank)
        var scaleFactors = Array(repeating: 1.0, count: rank)
        var outputShape = inputShape
        if let sizes {
            guard scales == nil else { throw .invalidShape("Resize takes 'scales' or 'sizes', not both") }
            let values = try LayoutSupport.integers(sizes, input: sizesInput ?? 3)
            guard values.count == axes.count else {
                throw .invalidShape("Resize sizes has \(values.count) values for \(axes.count) axes of \(inputShape)")
            }
            for (axis, size) in zip(axes, values) {
                guard size >= 0 else { throw .outOfRange("Resize size \(size) for axis \(axis) is negative") }
                guard inputShape[axis] > 0 else {
                    throw .invalidShape("Resize cannot size axis \(axis) of \(inputShape): it is empty")
                }
                scaleFactors[axis] = Double(size) / Double(inputShape[axis])
                outputShape[axis] = size
            }
            if keepAspectRatioPolicy != "stretch" {
                let chosen = axes.map { scaleFactors[$0] }
                let scale = (keepAspectRatioPolicy == "not_larger" ? chosen.min() : chosen.max()) ?? 1
                for axis in axes {
                    scaleFactors[axis] = scale
                    outputShape[axis] = Int(scale * Double(inputShape[axis]) + 0.5)
                }
            }
        } else if let scales {
            let values = try Self.floats(scales, input: scalesInput)
            guard values.count == axes.count else {
                throw .invalidShape("Resize scales has \(values.count) values for \(axes.count) axes of \(inputShape)")
            }
            for (axis, scale) in zip(axes, values) {
                let size = (scale * Double(inputShape[axis])).rounded(.down)
                guard scale > 0, size < 1e15 else {
                    throw .outOfRange("Resize scale \(scale) for axis \(axis) must be positive and finite")
                }
                scaleFactors[axis] = scale
                outputShape[axis] = Int(size)
            }
        } else {
            throw .invalidShape("Resize needs 'scales' or 'sizes'")
        }
        var roiValues: [Double] = []
        if transformation == "tf_crop_and_resize" {
            guard let roi else { throw .invalidShape("Resize with tf_crop_and_resize needs 'roi'") }
            roiValues = try Self.floats(roi, input: 1)
            guard roiValues.count == 2 * axes.count else {
                throw .invalidShape("Resize roi has \(roiValues.count) values for \(axes.count) axes")
            }
        }
        _ = try LayoutSupport.shape(outputShape)
        var tables: [Resize.AxisTable] = []
        for axis in 0..<rank {
            let scale = scaleFactors[axis]
            let position = axes.firstIndex(of: axis)
            let crop = position.map { roiValues.isEmpty ? (0.0, 1.0) : (roiValues[$0], roiValues[axes.count + $0]) }
            let trivialCrop = crop.map { abs($0.0) <= 1e-9 && abs($0.1 - 1) <= 1e-9 } ?? true
            if abs(scale - 1) <= 1e-9, outputShape[axis] == inputShape[axis], trivialCrop {
                tables.append(.identity(count: inputShape[axis]))
                continue
            }
            guard inputShape[axis] > 0 || outputShape[axis] == 0 else {
                throw .invalidShape("Resize cannot grow empty axis \(axis) of \(inputShape)")
            }
            let coordinates: Resize.CoordinateTransformation
            switch transformation {
            case "half_pixel_symmetric": coordinates = .halfPixelSymmetric
            case "pytorch_half_pixel": coordinates = .pytorchHalfPixel
            case "align_corners": coordinates = .alignCorners
            case "asymmetric": coordinates = .asymmetric
            case "tf_half_pixel_for_nn": coordinates = .tfHalfPixelForNearest
            case "tf_crop_and_resize": coordinates = .tfCropAndResize(start: crop?.0 ?? 0, end: crop?.1 ?? 1)
            default: coordinates = .halfPixel
            }
            tables.append(
                Resize.axisTable(
                    inputCount: inputShape[axis], outputCount: outputShape[axis], scale: scale, mode: mode,
                    transformation: coordinates, excludeOutside: excludeOutside, antialias: antialias))
        }
        return (outputShape, tables)
    }

    private func planFromFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> (
        shape: [Int], tables: [Resize.AxisTable]
    ) {
        let input = try inputs.required(0)
        guard input.dtype == .float32 else { throw .unsupported("Resize of \(input.dtype) (float32 only)") }
        guard let scales = try Self.constant(inputs, scalesInput) else { throw .notConstant(input: scalesInput) }
        guard let sizes = try Self.constant(inputs, sizesInput) else { throw .notConstant(input: sizesInput ?? 3) }
        var roi: Tensor? = nil
        if transformation == "tf_crop_and_resize" {
            guard let value = try Self.constant(inputs, roiInput) else { throw .notConstant(input: 1) }
            roi = value
        }
        return try plan(inputShape: input.shape.dimensions, scales: scales, sizes: sizes, roi: roi)
    }

    func outputFacts(_ inputs: [ValueFact?]) throws(OperatorError) -> [ValueFact] {
        try inputs.checkCount(1...(sizesInput.map { $0 + 1 } ?? scalesInput + 1))
        let planned = try planFromFacts(inputs)
        return [ValueFact(dtype: .float32, shape: try LayoutSupport.shape(planned.shape))]
    }

    func specialized(for inputs: [ValueFact?], threadCount: Int) throws(OperatorError) -> any Operator {
        var copy = self
        copy.prepared = try planFromFacts(inputs)
        return copy
    }

    func run(_ inputs: [Tensor?], outputs: [Tensor], context: ComputeContext) throws(OperatorError) {
        let input = try inputs.required(0)
        let tables: [Resize.AxisTable]
        if let prepared, prepared.shape == outputs[0].shape.dimensions {
            tables = prepared.tables
        } else {
            func present(_ index: Int?) -> Tensor? {
                guard let index, let tensor = inputs.optional(index), tensor.elementCount > 0 else { return nil }
                return tensor
            }
            tables = try plan(
                inputShape: input.shape.dimensions, scales: present(scalesInput), sizes: present(sizesInput),
                roi: present(roiInput)
            ).tables
        }
        guard outputs[0].elementCount > 0 else { return }
        Resize.resize(
            input: input.pointer(as: Float.self), inputShape: input.shape.dimensions,
            output: outputs[0].pointer(as: Float.self), tables: tables, extrapolationValue: extrapolationValue,
            context: context)
    }
}
