import Apus
import Foundation

/// Small artifacts written for the tests, with outputs derived by hand.
enum Fixtures {
    /// `y = x · W` with W = [[1, 0], [0, 1], [1, 1], [2, −1]]: x = [1, 2, 3, 4] gives [12, 1].
    static func tinyGraph() -> Graph {
        Graph(
            name: "tiny",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(4)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(2)])],
            nodes: [Node(name: "matmul", opType: "MatMul", inputs: ["x", "W"], outputs: ["y"])],
            initializers: ["W": Tensor(shape: [4, 2], scalars: [Float](arrayLiteral: 1, 0, 0, 1, 1, 1, 2, -1))])
    }

    static func tiny(goldenOutput: [Float] = [12, 1]) -> ArtifactContents {
        ArtifactContents(
            graph: tinyGraph(), labels: ["first", "second"],
            goldens: [
                GoldenExample(
                    inputs: ["x": Tensor(shape: [1, 4], scalars: [Float](arrayLiteral: 1, 2, 3, 4))],
                    outputs: ["y": Tensor(shape: [1, 2], scalars: goldenOutput)], tolerance: (1e-5, 1e-5),
                    source: "hand")
            ])
    }

    /// Mean of each colour channel of an 8×8 image as logits for "red", "green", "blue".
    static func classifier() -> ArtifactContents {
        let graph = Graph(
            name: "colours",
            inputs: [
                ValueInfo(name: "image", dtype: .float32, dimensions: [.fixed(1), .fixed(3), .fixed(8), .fixed(8)])
            ],
            outputs: [ValueInfo(name: "logits", dtype: .float32, dimensions: [.fixed(1), .fixed(3)])],
            nodes: [
                Node(name: "pool", opType: "GlobalAveragePool", inputs: ["image"], outputs: ["pooled"]),
                Node(name: "flatten", opType: "Flatten", inputs: ["pooled"], outputs: ["logits"]),
            ])
        let preprocess = """
            {"steps": [{"op": "resize", "size": [8], "interpolation": "bilinear", "antialias": true},
                       {"op": "center_crop", "size": [8]}, {"op": "pil_to_tensor"},
                       {"op": "convert_image_dtype", "dtype": "float32"}]}
            """
        return ArtifactContents(
            graph: graph, preprocessJSON: Data(preprocess.utf8), labels: ["red", "green", "blue"], outputKind: "logits",
            goldens: [
                GoldenExample(
                    inputs: ["image": Tensor(shape: [1, 3, 8, 8], scalars: [Float](repeating: 0.5, count: 192))],
                    outputs: ["logits": Tensor(shape: [1, 3], scalars: [Float](arrayLiteral: 0.5, 0.5, 0.5))],
                    tolerance: (1e-6, 1e-6), source: "hand")
            ])
    }

    /// Tens of milliseconds or more per run: `steps` chained [1024×512]·[512×512] products of zeros.
    /// Output [1024, 1], all zero.
    static func slow(steps: Int = 48) -> ArtifactContents {
        var nodes = [Node(name: "expand", opType: "Expand", inputs: ["x", "shape"], outputs: ["h0"])]
        for step in 0..<steps {
            nodes.append(
                Node(name: "mm\(step)", opType: "MatMul", inputs: ["h\(step)", "W"], outputs: ["h\(step + 1)"]))
        }
        nodes.append(Node(name: "head", opType: "MatMul", inputs: ["h\(steps)", "V"], outputs: ["y"]))
        let graph = Graph(
            name: "slow",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(1)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: [.fixed(1024), .fixed(1)])],
            nodes: nodes,
            initializers: [
                "shape": Tensor(shape: [2], scalars: [Int64](arrayLiteral: 1024, 512)),
                "W": Tensor(shape: [512, 512], scalars: [Float](repeating: 0, count: 512 * 512)),
                "V": Tensor(shape: [512, 1], scalars: [Float](repeating: 0, count: 512)),
            ])
        return ArtifactContents(graph: graph)
    }

    /// A folder with tiny.apus, broken.apus (a golden that cannot match), colours.apus and slow.apus.
    static func modelDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appending(path: "apus-serve-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try ArtifactWriter.write(tiny(), to: directory.appending(path: "tiny.apus"))
        try ArtifactWriter.write(tiny(goldenOutput: [99, 1]), to: directory.appending(path: "broken.apus"))
        try ArtifactWriter.write(classifier(), to: directory.appending(path: "colours.apus"))
        try ArtifactWriter.write(slow(), to: directory.appending(path: "slow.apus"))
        try Data("not a model".utf8).write(to: directory.appending(path: "notes.txt"))
        return directory
    }

    /// An 8-bit RGB PNG of one colour, encoded by hand (stored deflate blocks).
    static func png(width: Int, height: Int, rgb: (UInt8, UInt8, UInt8)) -> Data {
        var raw: [UInt8] = []
        for _ in 0..<height {
            raw.append(0)  // filter: none
            for _ in 0..<width { raw += [rgb.0, rgb.1, rgb.2] }
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let count = min(65535, raw.count - offset)
            let final: UInt8 = offset + count == raw.count ? 1 : 0
            zlib += [final, UInt8(count & 0xff), UInt8(count >> 8), UInt8(~count & 0xff), UInt8((~count >> 8) & 0xff)]
            zlib += raw[offset..<offset + count]
            offset += count
        } while offset < raw.count
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in raw {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        zlib += bigEndian((b << 16) | a)
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ body: [UInt8]) {
            let typed = Array(type.utf8) + body
            png += bigEndian(UInt32(body.count)) + typed + bigEndian(crc32(typed))
        }
        chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 2, 0, 0, 0])
        chunk("IDAT", zlib)
        chunk("IEND", [])
        return Data(png)
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
