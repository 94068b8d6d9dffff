/// The element type of a ``Tensor``.
///
/// The raw values are the names used in `.apus` headers and in error messages.
public enum DType: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case float32
    case float16
    case int64
    case int32
    case int8
    case uint8
    case bool

    /// Size of one element in bytes.
    public var byteSize: Int {
        switch self {
        case .float32, .int32: 4
        case .float16: 2
        case .int64: 8
        case .int8, .uint8, .bool: 1
        }
    }

    /// Whether the type is a floating-point type.
    public var isFloatingPoint: Bool { self == .float32 || self == .float16 }

    public var description: String { rawValue }
}

/// A Swift scalar type that can be the element of a ``Tensor``.
public protocol TensorScalar: Sendable {
    /// The ``DType`` that stores this scalar type.
    static var dtype: DType { get }
}

extension Float: TensorScalar { public static var dtype: DType { .float32 } }
extension Int64: TensorScalar { public static var dtype: DType { .int64 } }
extension Int32: TensorScalar { public static var dtype: DType { .int32 } }
extension Int8: TensorScalar { public static var dtype: DType { .int8 } }
extension UInt8: TensorScalar { public static var dtype: DType { .uint8 } }
extension Bool: TensorScalar { public static var dtype: DType { .bool } }
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    extension Float16: TensorScalar { public static var dtype: DType { .float16 } }
#endif
