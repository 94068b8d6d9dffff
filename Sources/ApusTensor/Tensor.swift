/// A dense, contiguous, row-major n-dimensional array.
///
/// A `Tensor` is a value that refers to a ``TensorStorage``; copies of a tensor share the same
/// bytes. Tensors handed to ``Tensor/init(shape:scalars:)`` or created by the runtime own fresh
/// storage; tensors read from a memory-mapped model wrap the file's pages without copying.
///
/// ```swift
/// let input = Tensor(shape: [1, 3, 224, 224], scalars: pixels)
/// ```
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    /// The dimensions.
    public let shape: Shape
    /// The element type.
    public let dtype: DType
    /// The memory the elements live in.
    public let storage: TensorStorage
    /// Offset of the first element inside ``storage``, in bytes.
    public let byteOffset: Int

    /// Creates a zero-filled tensor.
    ///
    /// - Throws: ``TensorError`` if the shape is invalid or memory cannot be allocated.
    public init(zeros shape: Shape, dtype: DType) throws(TensorError) {
        let count = try shape.checkedElementCount()
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw .invalidShape(shape.dimensions, reason: "byte count overflows Int") }
        self.shape = shape
        self.dtype = dtype
        self.storage = try TensorStorage(byteCount: bytes)
        self.byteOffset = 0
    }

    /// Creates a tensor viewing `storage` at `byteOffset`, checking that the bytes fit.
    ///
    /// - Throws: ``TensorError`` if the shape is invalid or the storage is too small.
    public init(shape: Shape, dtype: DType, storage: TensorStorage, byteOffset: Int = 0) throws(TensorError) {
        let count = try shape.checkedElementCount()
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw .invalidShape(shape.dimensions, reason: "byte count overflows Int") }
        guard byteOffset >= 0, byteOffset <= storage.byteCount, bytes <= storage.byteCount - byteOffset else {
            throw .byteCountMismatch(expected: bytes, actual: Swift.max(0, storage.byteCount - byteOffset))
        }
        self.shape = shape
        self.dtype = dtype
        self.storage = storage
        self.byteOffset = byteOffset
    }

    /// Creates a tensor holding a copy of `scalars`, whose count must equal the shape's element count.
    ///
    /// - Throws: ``TensorError/scalarCountMismatch(shape:expected:actual:)`` or a shape error.
    public init<Scalar: TensorScalar>(shape: Shape, checkedScalars scalars: [Scalar]) throws(TensorError) {
        let count = try shape.checkedElementCount()
        guard count == scalars.count else {
            throw .scalarCountMismatch(shape: shape.dimensions, expected: count, actual: scalars.count)
        }
        try self.init(zeros: shape, dtype: Scalar.dtype)
        scalars.withUnsafeBytes { source in
            guard let base = source.baseAddress else { return }
            storage.baseAddress.copyMemory(from: base, byteCount: source.count)
        }
    }

    /// Creates a tensor holding a copy of `scalars`. The count must match the shape; this
    /// initializer traps otherwise (use ``init(shape:checkedScalars:)`` for untrusted data).
    public init<Scalar: TensorScalar>(shape: Shape, scalars: [Scalar]) {
        do {
            try self.init(shape: shape, checkedScalars: scalars)
        } catch {
            preconditionFailure("\(error)")
        }
    }

    /// Creates a rank-0 tensor holding one scalar.
    public init<Scalar: TensorScalar>(scalar: Scalar) {
        self.init(shape: [], scalars: [scalar])
    }

    /// The number of elements.
    public var elementCount: Int { shape.elementCount }
    /// The number of bytes the elements occupy.
    public var byteCount: Int { shape.elementCount * dtype.byteSize }
    /// The address of the first element.
    public var rawPointer: UnsafeMutableRawPointer { storage.baseAddress + byteOffset }

    /// Returns a tensor sharing this tensor's bytes with another shape of the same element count.
    ///
    /// - Throws: ``TensorError/invalidShape(_:reason:)`` if the element counts differ.
    public func reshaped(to newShape: Shape) throws(TensorError) -> Tensor {
        guard try newShape.checkedElementCount() == elementCount else {
            throw .invalidShape(newShape.dimensions, reason: "cannot reshape \(shape) (\(elementCount) elements)")
        }
        return try Tensor(shape: newShape, dtype: dtype, storage: storage, byteOffset: byteOffset)
    }

    /// Calls `body` with the elements as a typed buffer.
    ///
    /// - Precondition: `Scalar.dtype == dtype`.
    public func withUnsafeBufferPointer<Scalar: TensorScalar, Result>(
        as type: Scalar.Type, _ body: (UnsafeBufferPointer<Scalar>) throws -> Result
    ) rethrows -> Result {
        precondition(Scalar.dtype == dtype, "tensor is \(dtype), accessed as \(Scalar.dtype)")
        let pointer = rawPointer.assumingMemoryBound(to: Scalar.self)
        return try body(UnsafeBufferPointer(start: pointer, count: elementCount))
    }

    /// Calls `body` with the elements as a mutable typed buffer. The bytes are shared with every
    /// copy of this tensor.
    ///
    /// - Precondition: `Scalar.dtype == dtype`.
    public func withUnsafeMutableBufferPointer<Scalar: TensorScalar, Result>(
        as type: Scalar.Type, _ body: (UnsafeMutableBufferPointer<Scalar>) throws -> Result
    ) rethrows -> Result {
        precondition(Scalar.dtype == dtype, "tensor is \(dtype), accessed as \(Scalar.dtype)")
        let pointer = rawPointer.assumingMemoryBound(to: Scalar.self)
        return try body(UnsafeMutableBufferPointer(start: pointer, count: elementCount))
    }

    /// A typed pointer to the first element. Valid while this tensor (or a copy) is alive.
    ///
    /// - Precondition: `Scalar.dtype == dtype`.
    public func pointer<Scalar: TensorScalar>(as type: Scalar.Type) -> UnsafeMutablePointer<Scalar> {
        precondition(Scalar.dtype == dtype, "tensor is \(dtype), accessed as \(Scalar.dtype)")
        return rawPointer.assumingMemoryBound(to: Scalar.self)
    }

    /// The elements as an array.
    ///
    /// - Throws: ``TensorError/dtypeMismatch(expected:actual:)`` if `Scalar` is not this tensor's type.
    public func scalars<Scalar: TensorScalar>(as type: Scalar.Type) throws(TensorError) -> [Scalar] {
        guard Scalar.dtype == dtype else { throw .dtypeMismatch(expected: dtype, actual: Scalar.dtype) }
        return withUnsafeBufferPointer(as: Scalar.self) { Array($0) }
    }

    /// A copy of this tensor in fresh storage.
    public func copy() throws(TensorError) -> Tensor {
        let result = try Tensor(zeros: shape, dtype: dtype)
        result.rawPointer.copyMemory(from: rawPointer, byteCount: byteCount)
        return result
    }

    /// Whether both tensors have the same shape, dtype and bytes.
    public func isBitwiseEqual(to other: Tensor) -> Bool {
        guard shape == other.shape, dtype == other.dtype else { return false }
        return memcmp(rawPointer, other.rawPointer, byteCount) == 0
    }

    public var description: String { "Tensor(\(dtype), \(shape))" }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension Tensor {
    /// Lets the memory behind this tensor's bytes be dropped until they are read again, when it
    /// is a read-only file mapping (see ``TensorStorage/releaseResidentPages(_:)``); the values
    /// stay the same. Kernels that keep their own packed copy of constant weights call this.
    public func releaseResidentPages() {
        storage.releaseResidentPages(byteOffset..<byteOffset + byteCount)
    }
}
