import ApusTensor
import Foundation
import Testing

@testable import ApusGraph

@Suite struct ONNXExternalDataTests {
    /// Writes `model.onnx` whose initializer "w" ([2] float) points at `entries`, into `folder`.
    func writeModel(in folder: URL, entries: [(String, String)]) throws -> URL {
        let model = ONNXProto.modelWithInitializer(ONNXProto.externalTensor("w", dims: [2], entries: entries))
        let url = folder.appendingPathComponent("model.onnx")
        try model.data.write(to: url)
        return url
    }

    func expectExternalError(
        _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
    ) {
        expectONNXError("external data error containing '\(fragment)'", sourceLocation: sourceLocation, body) {
            if case .externalData("w", _, let reason) = $0 { return reason.contains(fragment) }
            return false
        }
    }

    @Test func readsDataAtAnOffset() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data([9, 9, 9, 9] + ONNXProto.floatBytes([1.5, -2])).write(to: folder.appendingPathComponent("w.bin"))
        let url = try writeModel(in: folder, entries: [("location", "w.bin"), ("offset", "4"), ("length", "8")])
        let graph = try ONNXReader.read(contentsOf: url)
        #expect(try graph.initializers["w"]?.scalars(as: Float.self) == [1.5, -2])
        // Without a base directory the same model cannot be read.
        expectExternalError("no base directory") {
            _ = try ONNXReader.read(data: Data(contentsOf: url), baseDirectory: nil)
        }
    }

    @Test func readsFromASubfolder() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("weights"), withIntermediateDirectories: true)
        try Data(ONNXProto.floatBytes([3, 4])).write(to: folder.appendingPathComponent("weights/w.bin"))
        // `..` that stays inside the folder is fine: containment is decided on the resolved path.
        let url = try writeModel(in: folder, entries: [("location", "weights/../weights/w.bin")])
        #expect(try ONNXReader.read(contentsOf: url).initializers["w"]?.scalars(as: Float.self) == [3, 4])
    }

    @Test func rejectsEscapes() throws {
        let root = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let outside = root.appendingPathComponent("secret.bin")
        try Data(ONNXProto.floatBytes([5, 6])).write(to: outside)

        var url = try writeModel(in: folder, entries: [("location", "../secret.bin")])
        expectExternalError("outside the model folder") { _ = try ONNXReader.read(contentsOf: url) }

        url = try writeModel(in: folder, entries: [("location", outside.path)])
        expectExternalError("absolute paths") { _ = try ONNXReader.read(contentsOf: url) }

        try FileManager.default.createSymbolicLink(
            at: folder.appendingPathComponent("link.bin"), withDestinationURL: outside)
        url = try writeModel(in: folder, entries: [("location", "link.bin")])
        expectExternalError("symbolic link") { _ = try ONNXReader.read(contentsOf: url) }

        // A symlinked folder inside the model folder that points outside.
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("dir"), withDestinationURL: root)
        url = try writeModel(in: folder, entries: [("location", "dir/secret.bin")])
        expectExternalError("outside the model folder") { _ = try ONNXReader.read(contentsOf: url) }

        // A hard link to the outside file.
        try FileManager.default.linkItem(at: outside, to: folder.appendingPathComponent("hard.bin"))
        url = try writeModel(in: folder, entries: [("location", "hard.bin")])
        expectExternalError("hard links") { _ = try ONNXReader.read(contentsOf: url) }

        url = try writeModel(in: folder, entries: [("location", ".")])
        expectExternalError("outside the model folder") { _ = try ONNXReader.read(contentsOf: url) }

        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
        url = try writeModel(in: folder, entries: [("location", "sub")])
        expectExternalError("not a regular file") { _ = try ONNXReader.read(contentsOf: url) }

        url = try writeModel(in: folder, entries: [("location", "missing.bin")])
        expectExternalError("cannot find") { _ = try ONNXReader.read(contentsOf: url) }
    }

    @Test func rejectsRangesOutsideTheFile() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(ONNXProto.floatBytes([1, 2, 3])).write(to: folder.appendingPathComponent("w.bin"))
        var url = try writeModel(in: folder, entries: [("location", "w.bin"), ("offset", "8"), ("length", "8")])
        expectExternalError("runs past the end of the 12-byte file") { _ = try ONNXReader.read(contentsOf: url) }

        url = try writeModel(
            in: folder, entries: [("location", "w.bin"), ("offset", "9223372036854775807"), ("length", "8")])
        expectExternalError("runs past the end") { _ = try ONNXReader.read(contentsOf: url) }

        url = try writeModel(in: folder, entries: [("location", "w.bin"), ("length", "12")])
        expectExternalError("length 12 does not match the 8 bytes") { _ = try ONNXReader.read(contentsOf: url) }

        url = try writeModel(in: folder, entries: [("location", "w.bin"), ("offset", "-4")])
        expectExternalError("not a non-negative integer") { _ = try ONNXReader.read(contentsOf: url) }

        url = try writeModel(in: folder, entries: [("offset", "0")])
        expectExternalError("no location") { _ = try ONNXReader.read(contentsOf: url) }
    }

    @Test func readsTensorFilesWithoutExternalData() throws {
        let tensor = ONNXProto.externalTensor("w", dims: [2], entries: [("location", "w.bin")])
        expectExternalError("no base directory") { _ = try ONNXReader.readTensor(data: tensor.data) }
    }
}
