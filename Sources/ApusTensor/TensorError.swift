/// Errors raised by tensor construction, access and `.npy` reading.
public enum TensorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A shape is not acceptable (negative dimension, overflowing element count, …).
    case invalidShape([Int], reason: String)
    /// The number of scalars does not match the shape.
    case scalarCountMismatch(shape: [Int], expected: Int, actual: Int)
    /// A tensor of one dtype was used as another.
    case dtypeMismatch(expected: DType, actual: DType)
    /// A byte buffer does not have the length the shape and dtype require.
    case byteCountMismatch(expected: Int, actual: Int)
    /// An allocation was refused because it exceeds the configured limit.
    case allocationTooLarge(bytes: Int, limit: Int)
    /// The system could not allocate memory.
    case allocationFailed(bytes: Int)
    /// A `.npy` file is malformed or uses a feature Apus does not read.
    case invalidNPY(offset: Int, reason: String)

    public var description: String {
        switch self {
        case .invalidShape(let shape, let reason): "invalid shape \(shape): \(reason)"
        case .scalarCountMismatch(let shape, let expected, let actual):
            "shape \(shape) needs \(expected) scalars, got \(actual)"
        case .dtypeMismatch(let expected, let actual): "expected dtype \(expected), got \(actual)"
        case .byteCountMismatch(let expected, let actual): "expected \(expected) bytes, got \(actual)"
        case .allocationTooLarge(let bytes, let limit): "allocation of \(bytes) bytes exceeds the limit of \(limit)"
        case .allocationFailed(let bytes): "could not allocate \(bytes) bytes"
        case .invalidNPY(let offset, let reason): "invalid .npy at byte \(offset): \(reason)"
        }
    }
}
