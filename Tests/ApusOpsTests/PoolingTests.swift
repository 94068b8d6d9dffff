import CApusKernels
import Testing

@testable import ApusOps

@Suite struct PoolingTests {
    static func geometry(
        n: Int = 1, c: Int = 2, h: Int, w: Int, k: (Int, Int), s: (Int, Int) = (1, 1), d: (Int, Int) = (1, 1),
        pads: (Int, Int, Int, Int) = (0, 0, 0, 0), ceil: Bool = false
    ) -> Pool2DGeometry {
        let outH = Pool2DGeometry.outputSize(
            input: h, kernel: k.0, stride: s.0, dilation: d.0, padBegin: pads.0, padEnd: pads.2, ceilMode: ceil)!
        let outW = Pool2DGeometry.outputSize(
            input: w, kernel: k.1, stride: s.1, dilation: d.1, padBegin: pads.1, padEnd: pads.3, ceilMode: ceil)!
        return Pool2DGeometry(
            batch: n, channels: c, inputHeight: h, inputWidth: w, outputHeight: outH, outputWidth: outW,
            kernelHeight: k.0, kernelWidth: k.1, strideHeight: s.0, strideWidth: s.1, dilationHeight: d.0,
            dilationWidth: d.1, padTop: pads.0, padLeft: pads.1, padBottom: pads.2, padRight: pads.3)
    }

    static let geometries: [Pool2DGeometry] = [
        geometry(h: 8, w: 8, k: (3, 3), s: (2, 2), pads: (1, 1, 1, 1)),
        geometry(h: 7, w: 9, k: (3, 3), s: (2, 2), pads: (1, 1, 1, 1), ceil: true),
        geometry(h: 4, w: 4, k: (3, 3), s: (2, 2), ceil: true),
        geometry(h: 6, w: 5, k: (2, 3), s: (2, 1), d: (2, 1), pads: (0, 1, 1, 0)),
        geometry(n: 2, c: 3, h: 5, w: 5, k: (5, 5), pads: (2, 2, 2, 2)),
        geometry(h: 1, w: 13, k: (1, 4), s: (1, 3), pads: (0, 2, 0, 2), ceil: true),
        // Rows of several vectors (the AVX-512 kernel's loops and their masked ends).
        geometry(h: 112, w: 112, k: (3, 3), s: (2, 2), pads: (1, 1, 1, 1)),
        geometry(h: 9, w: 37, k: (3, 3), pads: (1, 1, 1, 1)),
        geometry(h: 10, w: 35, k: (2, 2), s: (2, 2), ceil: true),
        geometry(h: 5, w: 70, k: (3, 5), s: (2, 2), pads: (0, 2, 1, 2), ceil: true),
    ]

    /// NaN anywhere in a window makes its maximum NaN (ONNX MaxPool propagates it), on rows wide
    /// enough for the vector kernels.
    @Test func maxKeepsNaN() {
        for g in Self.geometries.suffix(4) {
            var random = TestRandom(seed: 3)
            var input = random.array(g.batch * g.channels * g.inputHeight * g.inputWidth)
            for i in stride(from: 5, to: input.count, by: 97) { input[i] = .nan }
            let count = g.batch * g.channels * g.outputHeight * g.outputWidth
            var fast = [Float](repeating: 0, count: count)
            var reference = [Float](repeating: 0, count: count)
            input.withUnsafeBufferPointer { x in
                fast.withUnsafeMutableBufferPointer {
                    Pool2D.run(
                        .max, geometry: g, input: x.baseAddress!, output: $0.baseAddress!,
                        context: ComputeContext(threadCount: 1))
                }
                reference.withUnsafeMutableBufferPointer {
                    Pool2D.reference(.max, geometry: g, input: x.baseAddress!, output: $0.baseAddress!)
                }
            }
            #expect(reference.contains { $0.isNaN }, "\(g): the test should reach NaN")
            let differing = zip(fast, reference).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(g): \(differing) outputs differ from the reference")
        }
    }

    /// The AVX2 max-pool kernel called directly (so that CPUs with AVX-512, which never choose it,
    /// test it too): every plane of every geometry it takes, with NaN, bit for bit the reference.
    @Test func avx2MaxPoolMatchesReference() throws {
        try #require(PackedGemm.cpuHasAVX2, "needs AVX2 and FMA")
        for g in Self.geometries where g.dilationHeight == 1 && g.dilationWidth == 1 && g.strideWidth <= 2 {
            var random = TestRandom(seed: 11)
            var input = random.array(g.batch * g.channels * g.inputHeight * g.inputWidth)
            for i in stride(from: 7, to: input.count, by: 89) { input[i] = .nan }
            let planes = g.batch * g.channels
            let count = planes * g.outputHeight * g.outputWidth
            var fast = [Float](repeating: 42, count: count)
            var reference = [Float](repeating: 0, count: count)
            var v = g.kernelGeometry
            var buffer = [Float](repeating: 0, count: Pool2D.maxBufferCount(g))
            input.withUnsafeBufferPointer { x in
                fast.withUnsafeMutableBufferPointer { out in
                    buffer.withUnsafeMutableBufferPointer {
                        apus_max_pool_avx2(&v, x.baseAddress!, planes, out.baseAddress!, $0.baseAddress!)
                    }
                }
                reference.withUnsafeMutableBufferPointer {
                    Pool2D.reference(.max, geometry: g, input: x.baseAddress!, output: $0.baseAddress!)
                }
            }
            let differing = zip(fast, reference).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(g): \(differing) outputs differ from the reference")
        }
    }

    @Test func outputSizeFollowsCeilRule() {
        // ceil((4 - 3) / 2) + 1 = 2 (onnx test_maxpool_2d_ceil: 4×4, kernel 3, stride 2 → 2×2).
        #expect(
            Pool2DGeometry.outputSize(
                input: 4, kernel: 3, stride: 2, dilation: 1, padBegin: 0, padEnd: 0, ceilMode: true) == 2)
        // 5 + 1 + 1 − 2 = 5 → ceil(5 / 2) + 1 = 4, but window 3 would start at 6 ≥ 5 + 1: 3.
        #expect(
            Pool2DGeometry.outputSize(
                input: 5, kernel: 2, stride: 2, dilation: 1, padBegin: 1, padEnd: 1, ceilMode: true) == 3)
        #expect(
            Pool2DGeometry.outputSize(
                input: 5, kernel: 2, stride: 2, dilation: 1, padBegin: 1, padEnd: 1, ceilMode: false) == 3)
        #expect(
            Pool2DGeometry.outputSize(
                input: 2, kernel: 3, stride: 1, dilation: 1, padBegin: 0, padEnd: 0, ceilMode: false) == nil)
    }

    @Test(arguments: geometries)
    func matchesReference(_ g: Pool2DGeometry) {
        var random = TestRandom(seed: 5)
        let input = random.array(g.batch * g.channels * g.inputHeight * g.inputWidth)
        let count = g.batch * g.channels * g.outputHeight * g.outputWidth
        for kind in [Pool2D.Kind.max, .average(countIncludePad: false), .average(countIncludePad: true)] {
            var fast = [Float](repeating: .nan, count: count)
            var reference = [Float](repeating: .nan, count: count)
            input.withUnsafeBufferPointer { x in
                fast.withUnsafeMutableBufferPointer {
                    Pool2D.run(
                        kind, geometry: g, input: x.baseAddress!, output: $0.baseAddress!,
                        context: ComputeContext(threadCount: 2))
                }
                reference.withUnsafeMutableBufferPointer {
                    Pool2D.reference(kind, geometry: g, input: x.baseAddress!, output: $0.baseAddress!)
                }
            }
            expectClose(fast, reference, reduction: 1, "\(kind) \(g)")
        }
    }

    /// With the planned workspace (one row buffer per worker, as in a model run) max pooling
    /// gives the reference's values at 1 and 2 threads.
    @Test(arguments: geometries)
    func maxWithWorkspaceMatchesReference(_ g: Pool2DGeometry) {
        var random = TestRandom(seed: 9)
        let input = random.array(g.batch * g.channels * g.inputHeight * g.inputWidth)
        let count = g.batch * g.channels * g.outputHeight * g.outputWidth
        var reference = [Float](repeating: .nan, count: count)
        input.withUnsafeBufferPointer { x in
            reference.withUnsafeMutableBufferPointer {
                Pool2D.reference(.max, geometry: g, input: x.baseAddress!, output: $0.baseAddress!)
            }
        }
        for threads in [1, 2] {
            let bytes = Pool2D.workspaceByteCount(.max, geometry: g, threadCount: threads)
            var fast = [Float](repeating: .nan, count: count)
            withWorkspace(bytes) { workspace in
                input.withUnsafeBufferPointer { x in
                    fast.withUnsafeMutableBufferPointer {
                        Pool2D.run(
                            .max, geometry: g, input: x.baseAddress!, output: $0.baseAddress!,
                            context: ComputeContext(
                                threadCount: threads, workspace: workspace, workspaceByteCount: bytes))
                    }
                }
            }
            expectClose(fast, reference, reduction: 1, "max, \(threads) threads, \(g)")
        }
    }

    /// Hand-derived: 1×1×3×3 input 1…9, kernel 2, stride 2, pads 1 on every side.
    @Test func averageCountIncludePadByHand() {
        let g = Self.geometry(c: 1, h: 3, w: 3, k: (2, 2), s: (2, 2), pads: (1, 1, 1, 1))
        #expect(g.outputHeight == 2 && g.outputWidth == 2)
        let input: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        var excluded = [Float](repeating: 0, count: 4)
        var included = [Float](repeating: 0, count: 4)
        input.withUnsafeBufferPointer { x in
            excluded.withUnsafeMutableBufferPointer {
                Pool2D.run(
                    .average(countIncludePad: false), geometry: g, input: x.baseAddress!, output: $0.baseAddress!,
                    context: ComputeContext())
            }
            included.withUnsafeMutableBufferPointer {
                Pool2D.run(
                    .average(countIncludePad: true), geometry: g, input: x.baseAddress!, output: $0.baseAddress!,
                    context: ComputeContext())
            }
        }
        #expect(excluded == [1, 2.5, 5.5, 7])
        #expect(included == [0.25, 1.25, 2.75, 7])
    }

    @Test(arguments: [0, 1, 15, 16, 17, 37])
    func globalMatchesScalar(_ size: Int) {
        var random = TestRandom(seed: UInt64(size))
        let input = random.array(3 * size)
        var average = [Float](repeating: 0, count: 3)
        var maximum = [Float](repeating: 0, count: 3)
        input.withUnsafeBufferPointer { x in
            let base = x.baseAddress ?? UnsafePointer(bitPattern: 64)!
            average.withUnsafeMutableBufferPointer {
                Pool2D.global(
                    max: false, planes: 3, planeSize: size, input: base, output: $0.baseAddress!,
                    context: ComputeContext())
            }
            maximum.withUnsafeMutableBufferPointer {
                Pool2D.global(
                    max: true, planes: 3, planeSize: size, input: base, output: $0.baseAddress!,
                    context: ComputeContext())
            }
        }
        for plane in 0..<3 {
            let values = input[(plane * size)..<((plane + 1) * size)]
            if size == 0 {
                #expect(average[plane].isNaN)
                continue
            }
            let mean = values.reduce(0, +) / Float(size)
            #expect(abs(average[plane] - mean) <= 1e-6)
            #expect(maximum[plane] == values.max())
        }
    }
}
