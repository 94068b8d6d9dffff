import Foundation
import Testing

@testable import ApusPreprocess

/// A `.npy` array as read by ``readNPY(_:)``: only v1 headers, `<f4` and `|u1`, C order.
struct NPYArray {
    var shape: [Int]
    var uint8: [UInt8]?
    var float32: [Float]?
}

struct NPYError: Error, CustomStringConvertible {
    let description: String
}

/// A minimal `.npy` reader (format v1, little-endian float32 or uint8, C order) so the tests do not
/// depend on ApusTensor's own reader.
func readNPY(_ url: URL) throws -> NPYArray {
    let bytes = [UInt8](try Data(contentsOf: url))
    guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
        throw NPYError(description: "\(url.lastPathComponent): not a .npy file")
    }
    guard bytes[6] == 1 else { throw NPYError(description: "\(url.lastPathComponent): npy version \(bytes[6])") }
    let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
    guard 10 + headerLength <= bytes.count else { throw NPYError(description: "truncated npy header") }
    let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
    guard !header.contains("'fortran_order': True") else { throw NPYError(description: "fortran order") }
    guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
        throw NPYError(description: "no shape in \(header)")
    }
    let shape = header[open.upperBound..<close].split(separator: ",").compactMap {
        Int($0.trimmingCharacters(in: .whitespaces))
    }
    let count = shape.reduce(1, *)
    let body = Array(bytes[(10 + headerLength)...])
    if header.contains("'descr': '|u1'") {
        guard body.count == count else {
            throw NPYError(description: "npy body has \(body.count) bytes, expected \(count)")
        }
        return NPYArray(shape: shape, uint8: body)
    }
    if header.contains("'descr': '<f4'") {
        guard body.count == count * 4 else { throw NPYError(description: "npy body size mismatch") }
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let bits =
                UInt32(body[4 * i]) | UInt32(body[4 * i + 1]) << 8 | UInt32(body[4 * i + 2]) << 16
                | UInt32(body[4 * i + 3]) << 24
            values[i] = Float(bitPattern: bits)
        }
        return NPYArray(shape: shape, float32: values)
    }
    throw NPYError(description: "unsupported dtype in \(header)")
}

/// The fixture folder written by scripts/fixtures/preprocess/make_fixtures.py.
struct Fixtures: Sendable {
    let directory: URL

    struct Entry: Decodable, Sendable {
        let name: String
        let file: String
        let mode: String
        let width: Int
        let height: Int
        let pipelines: [String: PreprocessSpec]
        let exif_transposed: Bool?
    }
    struct Hostile: Decodable, Sendable {
        let name: String
        let file: String
        let expected: String
        let pillow: String
    }
    struct Manifest: Decodable, Sendable {
        let images: [Entry]
        let hostile: [Hostile]
    }

    var manifest: Manifest {
        get throws {
            try JSONDecoder().decode(
                Manifest.self, from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
        }
    }

    func imageData(_ file: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent("images").appendingPathComponent(file))
    }

    func reference(_ name: String) throws -> NPYArray {
        try readNPY(directory.appendingPathComponent("ref").appendingPathComponent("\(name).npy"))
    }

    /// Loads (generating if needed) the fixtures. Returns `nil` when Python is unavailable outside
    /// CI; throws in CI (env `CI` set), so a missing reference makes the suite fail, not skip.
    static func load() throws -> Fixtures? {
        switch shared {
        case .success(let fixtures): return fixtures
        case .failure(let error):
            if ProcessInfo.processInfo.environment["CI"] != nil { throw error }
            print("ApusPreprocessTests: reference fixtures unavailable (\(error)); skipping comparisons")
            return nil
        }
    }

    private static let shared: Result<Fixtures, NPYError> = generate()

    private static func generate() -> Result<Fixtures, NPYError> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/fixtures/preprocess/make_fixtures.py")
        guard let scriptData = try? Data(contentsOf: script) else {
            return .failure(NPYError(description: "cannot read \(script.path)"))
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in scriptData {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let home = FileManager.default.homeDirectoryForCurrentUser
        let directory = home.appendingPathComponent(".cache/apus/preprocess-fixtures-\(String(hash, radix: 16))")
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("manifest.json").path) {
            return .success(Fixtures(directory: directory))
        }
        let python =
            ProcessInfo.processInfo.environment["APUS_PYTHON"] ?? "/root/.cache/apus/venv-91b1a31eeef4/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return .failure(NPYError(description: "python not found at \(python) (set APUS_PYTHON)"))
        }
        // Generate into a temporary folder and rename, so a crash never leaves a half-written cache.
        let temporary = home.appendingPathComponent(".cache/apus/preprocess-fixtures-tmp-\(getpid())")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path, temporary.path]
        do {
            try process.run()
            process.waitUntilExit()
        } catch {
            return .failure(NPYError(description: "cannot run \(python): \(error)"))
        }
        guard process.terminationStatus == 0 else {
            return .failure(NPYError(description: "make_fixtures.py exited with \(process.terminationStatus)"))
        }
        do {
            try FileManager.default.moveItem(at: temporary, to: directory)
        } catch {
            if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("manifest.json").path) {
                return .failure(NPYError(description: "cannot move fixtures into place: \(error)"))
            }
        }
        return .success(Fixtures(directory: directory))
    }
}

/// The case name of an ``ImageError``, as the fixture manifest spells it.
func caseName(_ error: ImageError) -> String {
    switch error {
    case .notAnImage: "notAnImage"
    case .truncated: "truncated"
    case .corrupt: "corrupt"
    case .badChecksum: "badChecksum"
    case .tooManyPixels: "tooManyPixels"
    case .emptyImage: "emptyImage"
    case .tooManyScans: "tooManyScans"
    case .unsupported: "unsupported"
    case .outOfMemory: "outOfMemory"
    case .invalidTransform: "invalidTransform"
    }
}

/// An ``Image`` from a `(H, W, 3)` uint8 reference array.
func image(from array: NPYArray) throws -> Image {
    guard array.shape.count == 3, array.shape[2] == 3, let pixels = array.uint8 else {
        throw NPYError(description: "expected an HxWx3 uint8 array, got \(array.shape)")
    }
    return try Image(width: array.shape[1], height: array.shape[0], pixels: pixels)
}
