import Testing

@testable import ApusOps

/// The `[2, 3, 4]` input numpy used below: `np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7 - 1.5`.
let normalizationInput: [Float] = (0..<24).map { Float($0) / 7 - 1.5 }

@Suite struct NormalizationKernelTests {
    func softmax(_ x: [Float], outer: Int, axisCount: Int, inner: Int, logarithm: Bool, threads: Int = 1) -> (
        [Float], [Float]
    ) {
        var fast = [Float](repeating: 0, count: x.count)
        var reference = fast
        x.withUnsafeBufferPointer { input in
            guard let source = input.baseAddress else { return }
            fast.withUnsafeMutableBufferPointer { output in
                guard let destination = output.baseAddress else { return }
                softmaxFloat32(
                    source, output: destination, outer: outer, axisCount: axisCount, inner: inner,
                    logarithm: logarithm, context: ComputeContext(threadCount: threads))
            }
            reference.withUnsafeMutableBufferPointer { output in
                guard let destination = output.baseAddress else { return }
                softmaxFloat32Reference(
                    source, output: destination, outer: outer, axisCount: axisCount, inner: inner,
                    logarithm: logarithm)
            }
        }
        return (fast, reference)
    }

    @Test func softmaxMatchesDoublePrecisionReference() {
        for length in kernelLengths {
            for logarithm in [false, true] {
                let x = pseudoRandomFloats(length * 3, seed: 20, low: -20, high: 20)
                let (fast, reference) = softmax(x, outer: 3, axisCount: length, inner: 1, logarithm: logarithm)
                expectClose(fast, reference, ulps: 8, absolute: 1e-6)
                let (strided, stridedReference) = softmax(
                    x, outer: 1, axisCount: length, inner: 3, logarithm: logarithm)
                expectClose(strided, stridedReference, ulps: 8, absolute: 1e-6)
            }
        }
    }

    @Test func softmaxMatchesNumpy() {
        // numpy: e = np.exp(x - x.max(1, keepdims=True)); e / e.sum(1, keepdims=True), x as above, axis 1.
        let axis1: [Float] = [
            0.1693047, 0.16930473, 0.1693047, 0.16930473, 0.29980394, 0.29980394, 0.29980394, 0.29980394, 0.5308913,
            0.5308913, 0.5308913, 0.5308913, 0.1693047, 0.1693047, 0.16930473, 0.1693047, 0.29980394, 0.29980394,
            0.29980394, 0.2998039, 0.5308913, 0.5308913, 0.5308913, 0.53089136,
        ]
        expectClose(softmax(normalizationInput, outer: 2, axisCount: 3, inner: 4, logarithm: false).0, axis1, ulps: 4)
        // torch.log_softmax(x, -1)
        let logAxisLast: [Float] = [
            -1.6132985, -1.4704413, -1.3275843, -1.1847271, -1.6132984, -1.4704413, -1.3275843, -1.1847271, -1.6132984,
            -1.4704413, -1.3275841, -1.1847271, -1.6132984, -1.4704413, -1.3275841, -1.1847271, -1.6132983, -1.4704412,
            -1.3275841, -1.1847271, -1.6132984, -1.4704413, -1.3275843, -1.184727,
        ]
        expectClose(
            softmax(normalizationInput, outer: 6, axisCount: 4, inner: 1, logarithm: true).0, logAxisLast, ulps: 4)
    }

    @Test func softmaxIsIdenticalForOneAndTwoThreads() {
        let x = pseudoRandomFloats(300 * 1000, seed: 21)
        let one = softmax(x, outer: 300, axisCount: 1000, inner: 1, logarithm: false, threads: 1).0
        let two = softmax(x, outer: 300, axisCount: 1000, inner: 1, logarithm: false, threads: 2).0
        #expect(one.map(\.bitPattern) == two.map(\.bitPattern))
    }

    @Test func layerNormalizationMatchesPyTorch() {
        let scale: [Float] = [1, 2, 0.5, -1]
        let bias: [Float] = [0, 0.1, 0.2, 0.3]
        var output = [Float](repeating: 0, count: 24)
        var mean = [Float](repeating: 0, count: 6)
        var inverse = [Float](repeating: 0, count: 6)
        normalizationInput.withUnsafeBufferPointer { x in
            scale.withUnsafeBufferPointer { s in
                bias.withUnsafeBufferPointer { b in
                    guard let px = x.baseAddress, let ps = s.baseAddress, let pb = b.baseAddress else { return }
                    layerNormalizationFloat32(
                        px, scale: ps, bias: pb, output: &output, rowCount: 6, rowLength: 4,
                        epsilon: 1e-5, meanOutput: &mean, inverseStdDevOutput: &inverse, context: ComputeContext())
                }
            }
        }
        // torch.nn.functional.layer_norm(x, (4,), scale, bias, eps=1e-5)
        let expected: [Float] = [
            -1.3413767, -0.7942496, 0.42356315, -1.0413783, -1.3413777, -0.79425156, 0.4235631, -1.041378, -1.3413777,
            -0.79425234, 0.4235631, -1.0413778, -1.3413777, -0.79425234, 0.4235631, -1.0413778, -1.3413779, -0.79425186,
            0.42356297, -1.0413778, -1.3413771, -0.7942514, 0.42356285, -1.0413785,
        ]
        expectClose(output, expected, absolute: 5e-6)
        // numpy: x.mean(-1) and 1 / np.sqrt(x.var(-1) + 1e-5)
        expectClose(mean, [-1.2857144, -0.7142857, -0.14285713, 0.4285714, 1, 1.5714285], ulps: 4)
        expectClose(inverse, [6.2597632, 6.259764, 6.2597647, 6.2597647, 6.259766, 6.2597632], absolute: 2e-5)
    }

    @Test func batchAndInstanceNormalizationMatchNumpy() {
        let x: [Float] = (0..<16).map { Float($0) / 3 }  // np.arange(16).reshape(1, 2, 2, 4) / 3
        let scale: [Float] = [1.5, -0.5]
        let bias: [Float] = [0.1, 0.2]
        let mean: [Float] = [2, 3]
        let variance: [Float] = [4, 0.25]
        let foldedScale = (0..<2).map { scale[$0] / (variance[$0] + 1e-5).squareRoot() }
        let foldedShift = (0..<2).map { bias[$0] - mean[$0] * foldedScale[$0] }
        var output = [Float](repeating: 0, count: 16)
        channelAffineFloat32(
            x, scale: foldedScale, shift: foldedShift, output: &output, batch: 1, channels: 2,
            spatial: 8, context: ComputeContext())
        // numpy: (x - mean) / np.sqrt(var + 1e-5) * scale + bias, per channel
        let batchNorm: [Float] = [
            -1.3999982, -1.1499984, -0.8999988, -0.6499991, -0.3999994, -0.14999974, 0.1, 0.34999964, 0.53332657, 0.2,
            -0.13332658, -0.4666534, -0.79998, -1.1333067, -1.4666331, -1.7999599,
        ]
        expectClose(output, batchNorm, absolute: 2e-6)
        instanceNormalizationFloat32(
            x, scale: scale, bias: bias, output: &output, batch: 1, channels: 2, spatial: 8,
            epsilon: 1e-5, context: ComputeContext())
        // torch.nn.functional.instance_norm(x, weight=scale, bias=bias, eps=1e-5)
        let instanceNorm: [Float] = [
            -2.1912682, -1.5366201, -0.881972, -0.22732401, 0.42732415, 1.081972, 1.7366202, 2.391268, 0.96375585,
            0.7455399, 0.52732396, 0.3091078, 0.09089184, -0.12732428, -0.3455401, -0.5637562,
        ]
        expectClose(output, instanceNorm, absolute: 2e-6)
    }
}

@Suite struct ReductionKernelTests {
    func reduce(_ operation: ReduceOperation, _ x: [Float], _ dimensions: [Int], _ axes: [Int], threads: Int = 1)
        -> (fast: [Float], reference: [Float])
    {
        let count = dimensions.enumerated().filter { !axes.contains($0.offset) }.reduce(1) { $0 * $1.element }
        var fast = [Float](repeating: .nan, count: count)
        var reference = fast
        x.withUnsafeBufferPointer { input in
            guard let source = input.baseAddress else { return }
            reduceFloat32(
                operation, source, dimensions: dimensions, axes: axes, output: &fast,
                context: ComputeContext(threadCount: threads))
            reduceFloat32Reference(operation, source, dimensions: dimensions, axes: axes, output: &reference)
        }
        return (fast, reference)
    }

    @Test(arguments: ReduceOperation.allCases)
    func reductionsMatchReference(operation: ReduceOperation) {
        let cases: [([Int], [Int])] = [
            ([2, 3, 4], [2]), ([2, 3, 4], [1]), ([2, 3, 4], [0]), ([2, 3, 4], [0, 2]), ([2, 3, 4], [0, 1, 2]),
            ([97], [0]), ([3, 17], [1]), ([3, 16], [1]), ([3, 15], [1]), ([4, 1, 5], [1]), ([2, 0, 3], [1]),
            ([2, 5, 0], [1]),
        ]
        for (dimensions, axes) in cases {
            let x = pseudoRandomFloats(max(1, dimensions.reduce(1, *)), seed: 30, low: 0.5, high: 1.5)
            let (fast, reference) = reduce(operation, x, dimensions, axes)
            // The fast path sums in another (fixed) order than the reference walk.
            expectClose(fast, reference, ulps: 16)
        }
    }

    @Test func reductionsMatchNumpy() {
        let x = normalizationInput
        // numpy: x.mean(axis=(0, 2)), x.sum(axis=1), x.max(axis=-1), np.sqrt((x * x).sum())
        expectClose(reduce(.mean, x, [2, 3, 4], [0, 2]).fast, [-0.4285715, 0.14285716, 0.71428573], ulps: 8)
        expectClose(
            reduce(.sum, x, [2, 3, 4], [1]).fast,
            [-2.7857141, -2.357143, -1.9285715, -1.5, 2.357143, 2.7857141, 3.2142856, 3.642857], ulps: 8)
        expectClose(
            reduce(.maximum, x, [2, 3, 4], [2]).fast,
            [-1.0714285, -0.5, 0.07142854, 0.6428571, 1.2142856, 1.7857144], ulps: 1)
        expectClose(reduce(.l2, x, [2, 3, 4], [0, 1, 2]).fast, [4.8948116], ulps: 4)
        // Empty reductions give the identity: ReduceMax over nothing is −∞ (ONNX reduce_max_empty_set).
        #expect(reduce(.maximum, [], [2, 0, 3], [1]).fast == [Float](repeating: -.infinity, count: 6))
        #expect(reduce(.sum, [], [2, 0, 3], [1]).fast == [Float](repeating: 0, count: 6))
    }

    @Test func reductionIsIdenticalForOneAndTwoThreads() {
        let x = pseudoRandomFloats(200 * 1000, seed: 31)
        #expect(
            reduce(.sum, x, [200, 1000], [1], threads: 1).fast == reduce(.sum, x, [200, 1000], [1], threads: 2).fast)
        #expect(
            reduce(.mean, x, [200, 1000], [0], threads: 1).fast == reduce(.mean, x, [200, 1000], [0], threads: 2).fast)
    }
}
