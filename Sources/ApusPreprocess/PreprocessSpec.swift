import Foundation

/// A torchvision-style preprocessing pipeline, applied to a decoded ``Image`` to produce a
/// `[1, 3, H, W]` tensor.
///
/// JSON form (keys are snake_case; `op` selects the step):
///
/// ```json
/// {"steps": [
///   {"op": "resize", "size": [256], "interpolation": "bilinear", "antialias": true, "max_size": null},
///   {"op": "center_crop", "size": [224]},
///   {"op": "pad", "padding": [4], "fill": 0},
///   {"op": "to_tensor"},
///   {"op": "pil_to_tensor"},
///   {"op": "convert_image_dtype", "dtype": "float32"},
///   {"op": "normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
/// ]}
/// ```
///
/// `interpolation` is one of `nearest`, `bilinear`, `bicubic`, `box`, `hamming`, `lanczos`
/// (default `bilinear`); `antialias` defaults to `true` and, as in torchvision for PIL images,
/// is always applied; `max_size` and `fill` are optional. `mean`/`std` are read as doubles and
/// rounded to float32, like `torch.as_tensor(mean, dtype=torch.float32)`.
public struct PreprocessSpec: Codable, Sendable, Hashable {
    /// One transform.
    public enum Step: Codable, Sendable, Hashable {
        /// `transforms.Resize(size, interpolation, max_size, antialias)` on a PIL image.
        case resize(size: [Int], interpolation: Interpolation, antialias: Bool, maxSize: Int?)
        /// `transforms.CenterCrop(size)` (zero padding when the crop is larger).
        case centerCrop(size: [Int])
        /// `transforms.Pad(padding, fill)` with constant padding.
        case pad(padding: [Int], fill: Int)
        /// `transforms.ToTensor()`: uint8 HWC → float CHW in [0, 1] (x / 255 in float32).
        case toTensor
        /// `transforms.PILToTensor()`: uint8 HWC → uint8 CHW.
        case pilToTensor
        /// `transforms.ConvertImageDtype(dtype)`; only `float32` (alias `float`) is supported.
        case convertImageDtype(dtype: String)
        /// `transforms.Normalize(mean, std)`: `(x - mean) / std` per channel in float32.
        case normalize(mean: [Float], std: [Float])

        private enum CodingKeys: String, CodingKey {
            case op, size, interpolation, antialias, maxSize = "max_size", padding, fill, dtype, mean, std
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let op = try c.decode(String.self, forKey: .op)
            switch op {
            case "resize":
                self = .resize(
                    size: try c.decode([Int].self, forKey: .size),
                    interpolation: try c.decodeIfPresent(Interpolation.self, forKey: .interpolation) ?? .bilinear,
                    antialias: try c.decodeIfPresent(Bool.self, forKey: .antialias) ?? true,
                    maxSize: try c.decodeIfPresent(Int.self, forKey: .maxSize))
            case "center_crop": self = .centerCrop(size: try c.decode([Int].self, forKey: .size))
            case "pad":
                self = .pad(
                    padding: try c.decode([Int].self, forKey: .padding),
                    fill: try c.decodeIfPresent(Int.self, forKey: .fill) ?? 0)
            case "to_tensor": self = .toTensor
            case "pil_to_tensor": self = .pilToTensor
            case "convert_image_dtype": self = .convertImageDtype(dtype: try c.decode(String.self, forKey: .dtype))
            case "normalize":
                self = .normalize(
                    mean: try c.decode([Double].self, forKey: .mean).map { Float($0) },
                    std: try c.decode([Double].self, forKey: .std).map { Float($0) })
            default:
                throw DecodingError.dataCorruptedError(
                    forKey: .op, in: c, debugDescription: "unknown preprocessing op \"\(op)\"")
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .resize(let size, let interpolation, let antialias, let maxSize):
                try c.encode("resize", forKey: .op)
                try c.encode(size, forKey: .size)
                try c.encode(interpolation, forKey: .interpolation)
                try c.encode(antialias, forKey: .antialias)
                try c.encodeIfPresent(maxSize, forKey: .maxSize)
            case .centerCrop(let size):
                try c.encode("center_crop", forKey: .op)
                try c.encode(size, forKey: .size)
            case .pad(let padding, let fill):
                try c.encode("pad", forKey: .op)
                try c.encode(padding, forKey: .padding)
                try c.encode(fill, forKey: .fill)
            case .toTensor: try c.encode("to_tensor", forKey: .op)
            case .pilToTensor: try c.encode("pil_to_tensor", forKey: .op)
            case .convertImageDtype(let dtype):
                try c.encode("convert_image_dtype", forKey: .op)
                try c.encode(dtype, forKey: .dtype)
            case .normalize(let mean, let std):
                try c.encode("normalize", forKey: .op)
                try c.encode(mean.map { Double($0) }, forKey: .mean)
                try c.encode(std.map { Double($0) }, forKey: .std)
            }
        }
    }

    /// The transforms, applied in order.
    public var steps: [Step]

    /// Creates a pipeline.
    public init(steps: [Step]) { self.steps = steps }

    /// torchvision's `ImageClassification` preset (the `weights.transforms()` of its classification
    /// models): resize the shorter edge to `resizeSize` → center crop `cropSize` → PILToTensor →
    /// ConvertImageDtype(float) → Normalize.
    public static func imageClassification(
        cropSize: Int, resizeSize: Int = 256, interpolation: Interpolation = .bilinear,
        mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225], antialias: Bool = true
    ) -> PreprocessSpec {
        PreprocessSpec(steps: [
            .resize(size: [resizeSize], interpolation: interpolation, antialias: antialias, maxSize: nil),
            .centerCrop(size: [cropSize]),
            .pilToTensor,
            .convertImageDtype(dtype: "float32"),
            .normalize(mean: mean, std: std),
        ])
    }

    private enum Stage {
        case image(Image)
        case uint8(pixels: [UInt8], height: Int, width: Int)  // CHW
        case float(values: [Float], height: Int, width: Int)  // CHW
    }

    /// Runs the pipeline. The result is `[1, 3, H, W]`, float32 — or uint8 when the pipeline ends
    /// with `pil_to_tensor` (an image never converted to a tensor is returned like PILToTensor).
    ///
    /// - Throws: ``ImageError/invalidTransform(_:)`` for steps in the wrong order or bad parameters.
    public func apply(to image: Image) throws(ImageError) -> Tensor {
        var stage = Stage.image(image)
        for (index, step) in steps.enumerated() {
            switch (step, stage) {
            case (.resize(let size, let interpolation, _, let maxSize), .image(let img)):
                stage = .image(try Transforms.resize(img, size: size, interpolation: interpolation, maxSize: maxSize))
            case (.centerCrop(let size), .image(let img)):
                stage = .image(try Transforms.centerCrop(img, size: size))
            case (.pad(let padding, let fill), .image(let img)):
                stage = .image(try Transforms.pad(img, padding: padding, fill: fill))
            case (.toTensor, .image(let img)):
                let chw = Self.chw(img)
                stage = .float(values: chw.map { Float($0) / 255 }, height: img.height, width: img.width)
            case (.pilToTensor, .image(let img)):
                stage = .uint8(pixels: Self.chw(img), height: img.height, width: img.width)
            case (.convertImageDtype(let dtype), _):
                guard dtype == "float32" || dtype == "float" else {
                    throw .invalidTransform("convert_image_dtype supports float32 only, not \(dtype)")
                }
                switch stage {
                case .uint8(let pixels, let h, let w):
                    stage = .float(values: pixels.map { Float($0) / 255 }, height: h, width: w)
                case .float: break
                case .image:
                    throw .invalidTransform(
                        "step \(index): convert_image_dtype needs a tensor; add pil_to_tensor first")
                }
            case (.normalize(let mean, let std), .float(var values, let h, let w)):
                guard mean.count == 3 || mean.count == 1, std.count == mean.count else {
                    throw .invalidTransform("normalize needs 1 or 3 means and as many stds, got \(mean) and \(std)")
                }
                guard std.allSatisfy({ $0 != 0 }) else { throw .invalidTransform("normalize std \(std) contains zero") }
                let plane = h * w
                for channel in 0..<3 {
                    let m = mean[mean.count == 1 ? 0 : channel], s = std[std.count == 1 ? 0 : channel]
                    for i in (channel * plane)..<((channel + 1) * plane) { values[i] = (values[i] - m) / s }
                }
                stage = .float(values: values, height: h, width: w)
            default:
                throw .invalidTransform("step \(index) (\(step)) cannot follow the previous steps")
            }
        }
        do {
            switch stage {
            case .image(let img):
                return try Tensor(shape: [1, 3, img.height, img.width], checkedScalars: Self.chw(img))
            case .uint8(let pixels, let h, let w): return try Tensor(shape: [1, 3, h, w], checkedScalars: pixels)
            case .float(let values, let h, let w): return try Tensor(shape: [1, 3, h, w], checkedScalars: values)
            }
        } catch {
            throw .invalidTransform("cannot build the output tensor: \(error)")
        }
    }

    private static func chw(_ image: Image) -> [UInt8] {
        let plane = image.width * image.height
        var out = [UInt8](repeating: 0, count: plane * 3)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<plane {
                    dst[i] = src[3 * i]
                    dst[plane + i] = src[3 * i + 1]
                    dst[2 * plane + i] = src[3 * i + 2]
                }
            }
        }
        return out
    }
}
