/// The dimensions of a ``Tensor``, outermost first (row-major).
///
/// A shape of rank 0 describes a scalar (one element). Dimensions are never negative; a zero
/// dimension makes an empty tensor.
public struct Shape: Hashable, Sendable, Codable, RandomAccessCollection, ExpressibleByArrayLiteral,
    CustomStringConvertible
{
    /// The dimensions, outermost first.
    public var dimensions: [Int]

    /// Creates a shape, checking that no dimension is negative and that the element count fits
    /// in `Int`.
    ///
    /// - Throws: ``TensorError/invalidShape(_:reason:)``.
    public init(validating dimensions: [Int]) throws(TensorError) {
        self.dimensions = dimensions
        _ = try checkedElementCount()
    }

    /// Creates a shape from dimensions known to be valid (non-negative, product fits in `Int`).
    public init(_ dimensions: [Int]) {
        precondition(dimensions.allSatisfy { $0 >= 0 }, "negative dimension in \(dimensions)")
        self.dimensions = dimensions
    }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { dimensions.count }
    public subscript(position: Int) -> Int {
        get { dimensions[position] }
        set { dimensions[position] = newValue }
    }

    /// The number of dimensions.
    public var rank: Int { dimensions.count }

    /// The number of elements (1 for a scalar). Traps on overflow: use
    /// ``checkedElementCount()`` for shapes read from outside.
    public var elementCount: Int { dimensions.reduce(1, *) }

    /// The number of elements, or an error if a dimension is negative or the product overflows.
    public func checkedElementCount() throws(TensorError) -> Int {
        var count = 1
        for dimension in dimensions {
            guard dimension >= 0 else { throw .invalidShape(dimensions, reason: "negative dimension") }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw .invalidShape(dimensions, reason: "element count overflows Int") }
            count = product
        }
        return count
    }

    /// Row-major strides in elements.
    public var strides: [Int] {
        var strides = [Int](repeating: 1, count: dimensions.count)
        var running = 1
        for axis in dimensions.indices.reversed() {
            strides[axis] = running
            running *= Swift.max(dimensions[axis], 1)
        }
        return strides
    }

    public var description: String { "[" + dimensions.map(String.init).joined(separator: ", ") + "]" }

    public init(from decoder: any Decoder) throws {
        let dimensions = try [Int](from: decoder)
        do {
            try self.init(validating: dimensions)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws { try dimensions.encode(to: encoder) }
}
