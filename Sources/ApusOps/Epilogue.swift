#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

import CApusKernels

/// An activation applied to a kernel's output while it is still in cache (the fused epilogue of
/// convolution and GEMM), with ONNX's formulas.
public enum FusedActivation: Sendable, Hashable {
    /// No activation.
    case none
    /// `max(0, x)`.
    case relu
    /// `min(max(x, min), max)`.
    case clip(min: Float, max: Float)
    /// `1 / (1 + exp(-x))`.
    case sigmoid
    /// `max(0, min(1, alpha * x + beta))`.
    case hardSigmoid(alpha: Float, beta: Float)
    /// `x * max(0, min(1, x / 6 + 0.5))`.
    case hardSwish
    /// `x` if `x >= 0`, else `alpha * x`.
    case leakyRelu(alpha: Float)
    /// `x * sigmoid(x)` (SiLU or Swish; `Mul(x, Sigmoid(x))` in exported graphs).
    case silu

    /// The activation named like its ONNX operator, with its attributes as `parameters`:
    /// `Clip` takes `[min, max]` (either may be missing: ±infinity), `HardSigmoid` `[alpha, beta]`
    /// (defaults 0.2, 0.5), `LeakyRelu` `[alpha]` (default 0.01). An empty name or `"none"` is
    /// ``none``; an unknown name or too many parameters give `nil`.
    public init?(name: String, parameters: [Float]) {
        switch name {
        case "", "none", "None":
            guard parameters.isEmpty else { return nil }
            self = .none
        case "Relu":
            guard parameters.isEmpty else { return nil }
            self = .relu
        case "Clip":
            guard parameters.count <= 2 else { return nil }
            let low = parameters.count > 0 ? parameters[0] : -Float.infinity
            let high = parameters.count > 1 ? parameters[1] : Float.infinity
            self = .clip(min: low, max: high)
        case "Sigmoid":
            guard parameters.isEmpty else { return nil }
            self = .sigmoid
        case "HardSigmoid":
            guard parameters.count <= 2 else { return nil }
            self = .hardSigmoid(
                alpha: parameters.count > 0 ? parameters[0] : 0.2, beta: parameters.count > 1 ? parameters[1] : 0.5)
        case "HardSwish":
            guard parameters.isEmpty else { return nil }
            self = .hardSwish
        case "LeakyRelu":
            guard parameters.count <= 1 else { return nil }
            self = .leakyRelu(alpha: parameters.first ?? 0.01)
        case "SiLU":
            guard parameters.isEmpty else { return nil }
            self = .silu
        default:
            return nil
        }
    }

    /// The activation of one value (the scalar reference of the SIMD forms).
    @inline(__always)
    public func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        // `x > 0 ? x : 0` keeps NaN as NaN like ONNX's max(0, x) in numpy.
        case .relu: return x < 0 ? 0 : x
        case .clip(let low, let high): return x < low ? low : (x > high ? high : x)
        case .sigmoid: return sigmoidScalar(x)
        case .hardSigmoid(let alpha, let beta): return Swift.max(0, Swift.min(1, alpha * x + beta))
        case .hardSwish: return x * Swift.max(0, Swift.min(1, x / 6 + 0.5))
        case .leakyRelu(let alpha): return x >= 0 ? x : alpha * x
        case .silu: return x * sigmoidScalar(x)
        }
    }

    /// The activation of sixteen values: the same formulas, with ``VectorMath`` for `exp` (within a
    /// few ulp of the scalar form, not bitwise equal).
    @inline(__always)
    public func apply(_ x: SIMD16<Float>) -> SIMD16<Float> {
        switch self {
        case .none: return x
        case .relu: return x.replacing(with: 0, where: x .< 0)
        case .clip(let low, let high):
            return x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
        case .sigmoid: return VectorMath.sigmoid(x)
        case .hardSigmoid(let alpha, let beta):
            let y = alpha * x + beta
            return y.replacing(with: 0, where: y .< 0).replacing(with: 1, where: y .> 1)
        case .hardSwish:
            let y = x / 6 + 0.5
            return x * y.replacing(with: 0, where: y .< 0).replacing(with: 1, where: y .> 1)
        case .leakyRelu(let alpha):
            return x.replacing(with: alpha * x, where: x .< 0)
        case .silu: return VectorMath.silu(x)
        }
    }

    /// Applies the activation in place to `count` values.
    public func apply(to values: UnsafeMutablePointer<Float>, count: Int) {
        if self == .none || count <= 0 { return }
        var index = 0
        let raw = UnsafeMutableRawPointer(values)
        while index + 16 <= count {
            let v = UnsafeRawPointer(raw + index * 4).loadUnaligned(as: SIMD16<Float>.self)
            raw.storeBytes(of: apply(v), toByteOffset: index * 4, as: SIMD16<Float>.self)
            index += 16
        }
        while index < count {
            values[index] = apply(values[index])
            index += 1
        }
    }
}

/// An activation as a type, so that a kernel generic over it is specialized per activation with
/// the activation inlined in its loop. (``FusedActivation/apply(_:)-(SIMD16<Float>)`` is a switch
/// over every case, too large for the optimizer to inline, and a call per vector costs more than
/// a Relu6.)
protocol VectorActivation {
    /// The activation of sixteen values.
    func apply(_ x: SIMD16<Float>) -> SIMD16<Float>
    /// The activation of one value.
    func apply(_ x: Float) -> Float
}

/// ``FusedActivation/none``.
struct IdentityActivation: VectorActivation {
    @inline(__always) func apply(_ x: SIMD16<Float>) -> SIMD16<Float> { x }
    @inline(__always) func apply(_ x: Float) -> Float { x }
}

/// ``FusedActivation/relu``.
struct ReluActivation: VectorActivation {
    @inline(__always) func apply(_ x: SIMD16<Float>) -> SIMD16<Float> { x.replacing(with: 0, where: x .< 0) }
    @inline(__always) func apply(_ x: Float) -> Float { FusedActivation.relu.apply(x) }
}

/// ``FusedActivation/clip(min:max:)`` (Relu6 in MobileNets).
struct ClipActivation: VectorActivation {
    let low: Float
    let high: Float
    @inline(__always) func apply(_ x: SIMD16<Float>) -> SIMD16<Float> {
        x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
    }
    @inline(__always) func apply(_ x: Float) -> Float { FusedActivation.clip(min: low, max: high).apply(x) }
}

/// ``FusedActivation/silu``.
struct SiLUActivation: VectorActivation {
    @inline(__always) func apply(_ x: SIMD16<Float>) -> SIMD16<Float> { VectorMath.silu(x) }
    @inline(__always) func apply(_ x: Float) -> Float { FusedActivation.silu.apply(x) }
}

/// Any other activation, through ``FusedActivation``'s switch.
struct GeneralActivation: VectorActivation {
    let activation: FusedActivation
    @inline(__always) func apply(_ x: SIMD16<Float>) -> SIMD16<Float> { activation.apply(x) }
    @inline(__always) func apply(_ x: Float) -> Float { activation.apply(x) }
}

/// The epilogue of a convolution or GEMM tile: per-row bias, an optional residual, then the
/// activation, in one pass over a row-major block of `rowCount` rows (output channels) by
/// `columnCount` columns (spatial positions).
public enum Epilogue {
    /// Computes `block[r][c] = activation(block[r][c] + bias[r] + residual[r][c])` for every row and
    /// column of the block. `bias` and `residual` may be `nil`.
    ///
    /// - Parameters:
    ///   - block: the first element of the block.
    ///   - rowStride: elements between the starts of consecutive rows of `block`.
    ///   - residual: the residual's element matching `block[0][0]`, laid out with `residualRowStride`.
    ///   - bias: the bias of the block's first row.
    public static func apply(
        to block: UnsafeMutablePointer<Float>, rowCount: Int, columnCount: Int, rowStride: Int,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, residualRowStride: Int,
        activation: FusedActivation
    ) {
        if bias == nil && residual == nil && activation == .none { return }
        if usesAVX2 {
            let (code, low, high, rest) = PackedGemm.kernelActivation(activation)
            if rest == .none {
                apus_epilogue_avx2(
                    block, rowCount, columnCount, rowStride, bias, residual, residualRowStride, code, low, high)
                return
            }
        }
        switch activation {
        case .none:
            apply(
                to: block, rowCount: rowCount, columnCount: columnCount, rowStride: rowStride, bias: bias,
                residual: residual, residualRowStride: residualRowStride, activation: IdentityActivation())
        case .relu:
            apply(
                to: block, rowCount: rowCount, columnCount: columnCount, rowStride: rowStride, bias: bias,
                residual: residual, residualRowStride: residualRowStride, activation: ReluActivation())
        case .clip(let low, let high):
            apply(
                to: block, rowCount: rowCount, columnCount: columnCount, rowStride: rowStride, bias: bias,
                residual: residual, residualRowStride: residualRowStride,
                activation: ClipActivation(low: low, high: high))
        case .silu:
            apply(
                to: block, rowCount: rowCount, columnCount: columnCount, rowStride: rowStride, bias: bias,
                residual: residual, residualRowStride: residualRowStride, activation: SiLUActivation())
        default:
            apply(
                to: block, rowCount: rowCount, columnCount: columnCount, rowStride: rowStride, bias: bias,
                residual: residual, residualRowStride: residualRowStride,
                activation: GeneralActivation(activation: activation))
        }
    }

    /// Whether ``apply(to:rowCount:columnCount:rowStride:bias:residual:residualRowStride:activation:)``
    /// runs as the AVX2 kernel (`apus_epilogue_avx2`) for the activations it has (none, Relu,
    /// Clip, Sigmoid, SiLU): on CPUs with AVX2 and FMA but without ``PackedGemm/hasAVX512``, where
    /// the OpenBLAS paths leave this pass after many layers (mobilenet_v2's Relu6, efficientnet_b0's
    /// SiLU with the SSE2 exp of the default build). `APUS_EPILOGUE_AVX2=0` keeps the Swift code.
    static let usesAVX2: Bool = {
        if EnvironmentSwitch.isOff("APUS_EPILOGUE_AVX2") { return false }
        return PackedGemm.cpuHasAVX2 && !PackedGemm.hasAVX512
    }()

    /// ``apply(to:rowCount:columnCount:rowStride:bias:residual:residualRowStride:activation:)``
    /// specialized for one activation type.
    private static func apply<A: VectorActivation>(
        to block: UnsafeMutablePointer<Float>, rowCount: Int, columnCount: Int, rowStride: Int,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, residualRowStride: Int, activation: A
    ) {
        for row in 0..<rowCount {
            let out = block + row * rowStride
            let rowBias = bias?[row] ?? 0
            let rowResidual = residual.map { $0 + row * residualRowStride }
            applyRow(out, count: columnCount, bias: rowBias, residual: rowResidual, activation: activation)
        }
    }

    /// One row of ``apply(to:rowCount:columnCount:rowStride:bias:residual:residualRowStride:activation:)``.
    @inline(__always)
    static func applyRow<A: VectorActivation>(
        _ out: UnsafeMutablePointer<Float>, count: Int, bias: Float, residual: UnsafePointer<Float>?,
        activation: A
    ) {
        let raw = UnsafeMutableRawPointer(out)
        var index = 0
        if let residual {
            let residualRaw = UnsafeRawPointer(residual)
            while index + 16 <= count {
                let v = UnsafeRawPointer(raw + index * 4).loadUnaligned(as: SIMD16<Float>.self)
                let r = (residualRaw + index * 4).loadUnaligned(as: SIMD16<Float>.self)
                raw.storeBytes(of: activation.apply(v + bias + r), toByteOffset: index * 4, as: SIMD16<Float>.self)
                index += 16
            }
            while index < count {
                out[index] = activation.apply(out[index] + bias + residual[index])
                index += 1
            }
        } else {
            while index + 16 <= count {
                let v = UnsafeRawPointer(raw + index * 4).loadUnaligned(as: SIMD16<Float>.self)
                raw.storeBytes(of: activation.apply(v + bias), toByteOffset: index * 4, as: SIMD16<Float>.self)
                index += 16
            }
            while index < count {
                out[index] = activation.apply(out[index] + bias)
                index += 1
            }
        }
    }

    /// The scalar reference of ``apply(to:rowCount:columnCount:rowStride:bias:residual:residualRowStride:activation:)``.
    public static func applyReference(
        to block: UnsafeMutablePointer<Float>, rowCount: Int, columnCount: Int, rowStride: Int,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, residualRowStride: Int,
        activation: FusedActivation
    ) {
        for row in 0..<rowCount {
            for column in 0..<columnCount {
                var value = block[row * rowStride + column]
                if let bias { value += bias[row] }
                if let residual { value += residual[row * residualRowStride + column] }
                block[row * rowStride + column] = activation.apply(value)
            }
        }
    }
}
