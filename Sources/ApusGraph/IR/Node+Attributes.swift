import ApusTensor

/// Typed access to node attributes; every accessor throws ``OperatorError`` naming the attribute
/// when it has the wrong kind.
extension Node {
    /// An integer attribute, or `defaultValue` when absent.
    public func int(_ name: String, default defaultValue: Int) throws(OperatorError) -> Int {
        try int(name) ?? defaultValue
    }

    /// An integer attribute, or `nil` when absent.
    public func int(_ name: String) throws(OperatorError) -> Int? {
        guard let attribute = attributes[name] else { return nil }
        guard case .int(let value) = attribute else {
            throw .wrongAttributeKind(name, expected: "int", actual: attribute.kindName)
        }
        return value
    }

    /// A float attribute, or `defaultValue` when absent.
    public func float(_ name: String, default defaultValue: Float) throws(OperatorError) -> Float {
        try float(name) ?? defaultValue
    }

    /// A float attribute, or `nil` when absent. An int attribute is accepted and converted.
    public func float(_ name: String) throws(OperatorError) -> Float? {
        guard let attribute = attributes[name] else { return nil }
        switch attribute {
        case .float(let value): return value
        case .int(let value): return Float(value)
        default: throw .wrongAttributeKind(name, expected: "float", actual: attribute.kindName)
        }
    }

    /// A string attribute, or `nil` when absent.
    public func string(_ name: String) throws(OperatorError) -> String? {
        guard let attribute = attributes[name] else { return nil }
        guard case .string(let value) = attribute else {
            throw .wrongAttributeKind(name, expected: "string", actual: attribute.kindName)
        }
        return value
    }

    /// A string attribute, or `defaultValue` when absent.
    public func string(_ name: String, default defaultValue: String) throws(OperatorError) -> String {
        try string(name) ?? defaultValue
    }

    /// An integer-list attribute, or `nil` when absent.
    public func ints(_ name: String) throws(OperatorError) -> [Int]? {
        guard let attribute = attributes[name] else { return nil }
        guard case .ints(let value) = attribute else {
            throw .wrongAttributeKind(name, expected: "ints", actual: attribute.kindName)
        }
        return value
    }

    /// A float-list attribute, or `nil` when absent.
    public func floats(_ name: String) throws(OperatorError) -> [Float]? {
        guard let attribute = attributes[name] else { return nil }
        guard case .floats(let value) = attribute else {
            throw .wrongAttributeKind(name, expected: "floats", actual: attribute.kindName)
        }
        return value
    }

    /// A tensor attribute, or `nil` when absent.
    public func tensor(_ name: String) throws(OperatorError) -> Tensor? {
        guard let attribute = attributes[name] else { return nil }
        guard case .tensor(let value) = attribute else {
            throw .wrongAttributeKind(name, expected: "tensor", actual: attribute.kindName)
        }
        return value
    }
}
