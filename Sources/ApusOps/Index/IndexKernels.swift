/// Kernels that pick elements by value along one axis of a tensor viewed as
/// `[outerCount, axisCount, innerCount]`: arg-max/min, top-k.
public enum IndexKernels {
    /// The index along the axis of the largest (or smallest) element of every `(outer, inner)` line,
    /// written as `output[outer · innerCount + inner]`. Ties go to the first index, or the last with
    /// `lastIndex`. Floating-point NaN counts as larger and smaller than every number (numpy's rule).
    public static func argExtremum<T: Comparable>(
        _ input: UnsafePointer<T>, outerCount: Int, axisCount: Int, innerCount: Int,
        output: UnsafeMutablePointer<Int64>, largest: Bool, lastIndex: Bool
    ) {
        for outer in 0..<outerCount {
            for inner in 0..<innerCount {
                let line = input + outer * axisCount * innerCount + inner
                var bestIndex = 0
                var best = line[0]
                var bestIsNaN = best != best
                if !bestIsNaN {
                    for k in 1..<Swift.max(axisCount, 1) {
                        let value = line[k * innerCount]
                        if value != value {
                            bestIndex = k
                            bestIsNaN = true
                            break
                        }
                        let better =
                            largest
                            ? (lastIndex ? value >= best : value > best)
                            : (lastIndex ? value <= best : value < best)
                        if better {
                            best = value
                            bestIndex = k
                        }
                    }
                }
                output[outer * innerCount + inner] = Int64(bestIndex)
            }
        }
    }

    /// The `k` largest (or smallest) elements of every line, in order, with their indices; among
    /// equal values the lower index comes first. Outputs are `[outerCount, k, innerCount]`.
    public static func topK<T: Comparable>(
        _ input: UnsafePointer<T>, outerCount: Int, axisCount: Int, innerCount: Int, k: Int, largest: Bool,
        values: UnsafeMutablePointer<T>, indices: UnsafeMutablePointer<Int64>
    ) {
        guard k > 0 else { return }
        var order = [Int](repeating: 0, count: axisCount)
        for outer in 0..<outerCount {
            for inner in 0..<innerCount {
                let line = input + outer * axisCount * innerCount + inner
                for index in 0..<axisCount { order[index] = index }
                order.sort { a, b in
                    let (x, y) = (line[a * innerCount], line[b * innerCount])
                    if x == y { return a < b }
                    return largest ? x > y : x < y
                }
                let base = outer * k * innerCount + inner
                for rank in 0..<k {
                    values[base + rank * innerCount] = line[order[rank] * innerCount]
                    indices[base + rank * innerCount] = Int64(order[rank])
                }
            }
        }
    }
}
