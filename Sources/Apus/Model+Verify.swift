import ApusGraph
import ApusOps
import ApusTensor

/// The outcome of re-running one golden example for one output.
public struct GoldenReport: Sendable, CustomStringConvertible {
    /// Index of the golden example.
    public var example: Int
    /// The output compared.
    public var output: String
    /// max |apus − stored| over the output.
    public var maxAbsoluteError: Float
    /// max |stored| over the output.
    public var maxAbsoluteExpected: Float
    /// The allowed error: absolute + relative × max |stored|.
    public var allowedError: Float
    /// Who computed the stored outputs (`"pytorch"` or `"apus"`).
    public var source: String
    /// Whether the output matched within tolerance (and had the stored shape).
    public var passed: Bool
    /// Why it failed, when it failed for another reason than the error bound.
    public var problem: String?

    public var description: String {
        let verdict = passed ? "ok" : "FAILED"
        let detail = problem.map { " (\($0))" } ?? ""
        return "golden \(example) output '\(output)': max error \(maxAbsoluteError) (allowed \(allowedError), "
            + "max |expected| \(maxAbsoluteExpected), from \(source)) \(verdict)\(detail)"
    }
}

extension Model {
    /// Re-runs every golden example stored with the model and compares each output with the
    /// stored one: it passes when max |apus − stored| ≤ absolute + relative × max |stored|.
    ///
    /// - Throws: ``ModelError`` when a golden example cannot be run at all.
    public func verifyGoldens() throws(ModelError) -> [GoldenReport] {
        var reports: [GoldenReport] = []
        for (index, golden) in goldens.enumerated() {
            let outputs = try run(golden.inputs)
            for (name, expected) in golden.outputs.sorted(by: { $0.key < $1.key }) {
                var report = GoldenReport(
                    example: index, output: name, maxAbsoluteError: .infinity, maxAbsoluteExpected: 0,
                    allowedError: 0, source: golden.source, passed: false, problem: nil)
                guard let actual = outputs[name] else {
                    report.problem = "output missing"
                    reports.append(report)
                    continue
                }
                guard actual.shape == expected.shape, actual.dtype == expected.dtype else {
                    report.problem = "got \(actual.dtype)\(actual.shape), stored \(expected.dtype)\(expected.shape)"
                    reports.append(report)
                    continue
                }
                let (maxError, maxExpected) = Self.errors(actual, expected)
                report.maxAbsoluteError = maxError
                report.maxAbsoluteExpected = maxExpected
                report.allowedError = golden.tolerance.absolute + golden.tolerance.relative * maxExpected
                report.passed = maxError <= report.allowedError
                reports.append(report)
            }
        }
        return reports
    }

    static func errors(_ actual: Tensor, _ expected: Tensor) -> (Float, Float) {
        func values(_ tensor: Tensor) -> [Float] {
            switch tensor.dtype {
            case .float32: tensor.withUnsafeBufferPointer(as: Float.self) { Array($0) }
            case .int64: tensor.withUnsafeBufferPointer(as: Int64.self) { $0.map(Float.init) }
            case .int32: tensor.withUnsafeBufferPointer(as: Int32.self) { $0.map(Float.init) }
            case .int8: tensor.withUnsafeBufferPointer(as: Int8.self) { $0.map(Float.init) }
            case .uint8: tensor.withUnsafeBufferPointer(as: UInt8.self) { $0.map(Float.init) }
            case .bool: tensor.withUnsafeBufferPointer(as: Bool.self) { $0.map { $0 ? 1 : 0 } }
            case .float16:
                UnsafeBufferPointer(
                    start: tensor.rawPointer.assumingMemoryBound(to: UInt16.self), count: tensor.elementCount
                )
                .map { float32(fromFloat16Bits: $0) }
            }
        }
        let a = values(actual)
        let e = values(expected)
        var maxError: Float = 0
        var maxExpected: Float = 0
        for (x, y) in zip(a, e) {
            let difference = abs(x - y)
            // NaN anywhere is a mismatch unless both are NaN.
            if x.isNaN != y.isNaN { return (.infinity, maxExpected) }
            if !x.isNaN { maxError = max(maxError, difference) }
            maxExpected = max(maxExpected, abs(y))
        }
        return (maxError, maxExpected)
    }
}
