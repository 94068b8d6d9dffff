import Apus
import ApusPreprocess
import Foundation

/// Reads a labels file: one class name per line, a trailing newline allowed.
func readLabels(atPath path: String) throws -> [String] {
    var labels = try String(contentsOfFile: path, encoding: .utf8)
        .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    if labels.last == "" { labels.removeLast() }
    return labels
}

/// Reads a preprocessing spec JSON file, returning the spec and the file's bytes.
func readPreprocessSpec(atPath path: String) throws -> (spec: PreprocessSpec, json: Data) {
    let data = try Data(contentsOf: URL(filePath: path))
    return (try JSONDecoder().decode(PreprocessSpec.self, from: data), data)
}

/// A `kB` field of /proc/self/status (such as `VmRSS` or `VmHWM`), or `nil` when unavailable.
func procStatusKilobytes(_ field: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
    return nil
}
