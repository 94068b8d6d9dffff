import CApusKernels
import Testing

@testable import ApusOps

/// The ``Conv2DPlan/Algorithm/taps`` path: one packed GEMM per kernel tap over strided planes.
@Suite(.enabled(if: PackedGemm.hasAVX512)) struct TapPlanesTests {
    init() throws { try BLAS.load() }

    /// Geometries the planes must get right: both strides, odd sizes, asymmetric and large pads,
    /// dilation, 1-wide kernels, more channels than one reduction block (128), rows wider than
    /// one vector at stride 2, several column and row tiles, batch 2.
    static let cases: [ConvCase] =
        convCases.filter { $0.geometry.groups == 1 } + [
            ConvCase(
                geometry: geometry(c: 16, h: 57, w: 57, m: 24, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
                activation: .relu),
            ConvCase(
                geometry: geometry(c: 136, h: 14, w: 14, m: 40, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
                residual: true, activation: .relu),
            ConvCase(geometry: geometry(c: 24, h: 33, w: 40, m: 16, k: (1, 1), stride: (2, 2))),
            ConvCase(
                geometry: geometry(c: 8, h: 23, w: 37, m: 16, k: (5, 5), pads: (2, 2, 2, 2)), activation: .silu),
            ConvCase(geometry: geometry(c: 12, h: 17, w: 19, m: 8, k: (7, 1), pads: (3, 0, 3, 0))),
            ConvCase(geometry: geometry(c: 12, h: 17, w: 19, m: 8, k: (1, 7), pads: (0, 3, 0, 3)), residual: true),
            ConvCase(
                geometry: geometry(c: 8, h: 40, w: 36, m: 16, k: (3, 3), stride: (3, 2), pads: (0, 2, 1, 0)),
                activation: .clip(min: -0.5, max: 0.5)),
            ConvCase(
                geometry: geometry(c: 8, h: 29, w: 31, m: 16, k: (3, 3), dilation: (2, 3), pads: (2, 3, 2, 3))),
            ConvCase(
                geometry: geometry(n: 2, c: 32, h: 30, w: 30, m: 200, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
                residual: true, activation: .hardSwish),
            ConvCase(geometry: geometry(c: 64, h: 96, w: 96, m: 16, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1))),
        ]

    @Test(arguments: cases)
    func matchesReference(_ c: ConvCase) {
        let (fast, reference, plan) = runConv(c, algorithm: .taps, planWithWeights: true)
        #expect(plan.algorithm == .taps)
        expectClose(fast, reference, reduction: c.geometry.reductionLength, "\(c)")
    }

    /// The planner takes the path for strided layers with constant weights (and keeps im2col
    /// when the weights are not known, or for grouped layers).
    @Test func chosenForStridedLayersWithWeights() {
        let strided = geometry(c: 64, h: 56, w: 56, m: 128, k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1))
        let weights = [Float](repeating: 0.5, count: 128 * 64 * 9)
        let plan = weights.withUnsafeBufferPointer { Conv2DPlan(geometry: strided, weights: $0.baseAddress) }
        #expect(plan.algorithm == (TapPlanes.isEnabledByDefault ? .taps : .im2col))
        #expect(Conv2DPlan(geometry: strided).algorithm == .im2col)
        #expect(!TapPlanes.supports(geometry(c: 6, h: 8, w: 9, m: 4, groups: 2, k: (3, 3))))
    }

    /// Threads split the output into tiles; no bit of the result depends on how many there are.
    @Test func bitwiseIdenticalForOneAndTwoThreads() {
        for c in Self.cases.suffix(2) {
            let one = runConv(c, algorithm: .taps, threads: 1, planWithWeights: true)
            let two = runConv(c, algorithm: .taps, threads: 2, planWithWeights: true)
            #expect(one.plan.taskCount > 1, "\(c) should split into several tasks")
            #expect(one.fast.withUnsafeBytes { a in two.fast.withUnsafeBytes { b in a.elementsEqual(b) } }, "\(c)")
        }
    }

    /// The AVX-512 strided copy gives the scalar loop's values, padding and row ends included, for
    /// offsets left of, inside and right of the row, rows above and below the plane, and two
    /// planes per call.
    @Test func vectorCopyMatchesScalar() {
        var random = TestRandom(seed: 7)
        let height = 5
        let planes = 2
        for inputWidth in [1, 7, 16, 31, 33, 64, 100] {
            let input = random.array(planes * height * inputWidth)
            for stride in [1, 2] {
                for offset in [-3, -1, 0, 1, 2, inputWidth - 2, inputWidth + 1] {
                    for width in [1, 15, 16, 17, 40] {
                        let rows = height + 3
                        var vector = [Float](repeating: .nan, count: planes * rows * width)
                        var scalar = vector
                        input.withUnsafeBufferPointer { p in
                            vector.withUnsafeMutableBufferPointer {
                                apus_strided_plane(
                                    p.baseAddress, planes, height, inputWidth, -1, 1, rows, offset, stride, width,
                                    $0.baseAddress, 1)
                            }
                            scalar.withUnsafeMutableBufferPointer {
                                apus_strided_plane(
                                    p.baseAddress, planes, height, inputWidth, -1, 1, rows, offset, stride, width,
                                    $0.baseAddress, 0)
                            }
                        }
                        // The scalar loop against the definition, then the vector copy against it.
                        var expected = [Float](repeating: 0, count: planes * rows * width)
                        for plane in 0..<planes {
                            for r in 0..<rows {
                                let y = r - 1
                                for x in 0..<width {
                                    let column = offset + x * stride
                                    if y >= 0 && y < height && column >= 0 && column < inputWidth {
                                        expected[(plane * rows + r) * width + x] =
                                            input[(plane * height + y) * inputWidth + column]
                                    }
                                }
                            }
                        }
                        #expect(scalar == expected, "scalar, width \(inputWidth) stride \(stride) offset \(offset)")
                        #expect(vector == expected, "vector, width \(inputWidth) stride \(stride) offset \(offset)")
                    }
                }
            }
        }
    }
}
