import Testing

@testable import ApusOps

/// The depthwise kernel's vector rows, including the partial last vector of narrow rows, against
/// the direct reference convolution.
@Suite struct DepthwiseTests {
    @Test(arguments: [1, 7, 14, 15, 16, 17, 37])
    func widthsAroundTheVectorMatchReference(_ width: Int) {
        for (kernel, stride) in [(3, 1), (3, 2), (5, 1), (5, 2), (2, 1)] {
            let pad = kernel / 2
            for (residual, activation) in [(false, FusedActivation.none), (true, .relu), (false, .silu)] {
                let c = ConvCase(
                    geometry: geometry(
                        n: 2, c: 3, h: 6, w: width, m: 3, groups: 3, k: (kernel, kernel), stride: (stride, stride),
                        pads: (pad, pad, pad, pad)),
                    residual: residual, activation: activation)
                let (fast, reference, plan) = runConv(c)
                #expect(plan.algorithm == .depthwise)
                expectClose(fast, reference, reduction: kernel * kernel, "\(c)")
                let two = runConv(c, threads: 2)
                #expect(fast.map(\.bitPattern) == two.fast.map(\.bitPattern), "\(c)")
            }
        }
    }
}
