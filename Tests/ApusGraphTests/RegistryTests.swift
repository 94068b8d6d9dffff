import Foundation
import Testing

@testable import ApusGraph

/// The registry and Docs/operators.md must name the same operators (STYLE.md point 3).
@Suite struct RegistryTests {
    static func documentedOperators(section: String) throws -> Set<String> {
        let root = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appending(path: "Docs/operators.md"), encoding: .utf8)
        guard let start = text.range(of: section) else { return [] }
        var names = Set<String>()
        for line in text[start.upperBound...].split(separator: "\n") {
            if line.hasPrefix("## ") { break }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard line.hasPrefix("|"), let first = cells.first, first != "operator", !first.hasPrefix("---") else { continue }
            names.insert(first)
        }
        return names
    }

    @Test func everyRegisteredOperatorIsDocumented() throws {
        let documented = try Self.documentedOperators(section: "## Default domain")
        let registered = Set(OperatorRegistry.onnx.keys)
        #expect(registered.subtracting(documented).isEmpty, "undocumented: \(registered.subtracting(documented).sorted())")
        #expect(documented.subtracting(registered).isEmpty, "documented but not registered: \(documented.subtracting(registered).sorted())")
    }

    @Test func everyFusedOperatorIsDocumented() throws {
        let documented = try Self.documentedOperators(section: "## Apus domain")
        #expect(documented == Set(OperatorRegistry.apus.keys))
    }
}
