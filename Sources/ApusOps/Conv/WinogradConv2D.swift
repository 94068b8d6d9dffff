/// Winograd F(4×4, 3×3) convolution for 3×3, stride-1, undilated, ungrouped layers.
///
/// Each 4×4 block of outputs is computed from a 6×6 block of inputs with 36 multiplications per
/// (input channel, output channel) pair instead of 144: the input tiles are transformed
/// (`V = Bᵀ d B`), multiplied element-wise with the transformed filters (`U = G g Gᵀ`) and summed
/// over input channels — which, for each of the 36 tile positions ξ, is one matrix product
/// `M[ξ] = U[ξ] (K × C) · V[ξ] (C × T)` done by sgemm — and transformed back (`Y = Aᵀ M A`).
///
/// The matrices are Lavin and Gray's with interpolation points 0, ±1, ±2, ∞. Their constants (up
/// to 8 in Aᵀ, 5 in Bᵀ) cost accuracy: the result differs from direct convolution by a few times
/// 1e-6 relative to the output scale per layer (measured in the tests).
enum WinogradConv2D {
    /// Output tile size.
    static let outputTile = 4
    /// Input tile size (output tile + kernel − 1).
    static let inputTile = 6
    /// Tile positions (6 × 6).
    static let positions = 36
    /// Tiles transformed together (one SIMD vector).
    static let lanes = 16
    /// Floats of scratch one transform task needs: 36 vectors for an input block, or 24 + 16 for
    /// an output block.
    static let scratchCount = 40 * 16

    /// Whether `g` can run as Winograd F(4×4, 3×3).
    static func supports(_ g: Conv2DGeometry) -> Bool {
        g.groups == 1 && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideHeight == 1 && g.strideWidth == 1
            && g.dilationHeight == 1 && g.dilationWidth == 1 && g.outputHeight > 0 && g.outputWidth > 0
    }

    /// Tiles per image: rows, columns, total, and the total rounded up to whole vectors (the row
    /// stride of the transformed matrices, so that every vector load and store is whole).
    static func tiles(_ g: Conv2DGeometry) -> (rows: Int, columns: Int, count: Int, stride: Int) {
        let rows = (g.outputHeight + outputTile - 1) / outputTile
        let columns = (g.outputWidth + outputTile - 1) / outputTile
        let count = rows * columns
        return (rows, columns, count, (count + lanes - 1) / lanes * lanes)
    }

    /// Transforms ONNX weights `[K, C, 3, 3]` into `U[ξ][k][c]` (36 × K × C), in Double.
    static func transformWeights(
        _ weights: UnsafePointer<Float>, outputChannels: Int, inputChannels: Int, into u: UnsafeMutablePointer<Float>
    ) {
        // G (6 × 3).
        let gMatrix: [[Double]] = [
            [1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
            [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1],
        ]
        let pairs = outputChannels * inputChannels
        for pair in 0..<pairs {
            let filter = weights + pair * 9
            // t = G · g (6 × 3), then U = t · Gᵀ (6 × 6).
            var t = [Double](repeating: 0, count: 18)
            for r in 0..<6 {
                for col in 0..<3 {
                    var sum = 0.0
                    for i in 0..<3 { sum += gMatrix[r][i] * Double(filter[i * 3 + col]) }
                    t[r * 3 + col] = sum
                }
            }
            for r in 0..<6 {
                for col in 0..<6 {
                    var sum = 0.0
                    for i in 0..<3 { sum += t[r * 3 + i] * gMatrix[col][i] }
                    u[(r * 6 + col) * pairs + pair] = Float(sum)
                }
            }
        }
    }

    /// `Bᵀ d` for one column of six values.
    @inline(__always)
    static func inputRows(
        _ d0: SIMD16<Float>, _ d1: SIMD16<Float>, _ d2: SIMD16<Float>, _ d3: SIMD16<Float>, _ d4: SIMD16<Float>,
        _ d5: SIMD16<Float>
    ) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let a = d4 - 4 * d2
        let b = d3 - 4 * d1
        let c = d4 - d2
        let e = 2 * (d3 - d1)
        return (
            4 * d0 - 5 * d2 + d4, a + b, a - b, c + e, c - e, 4 * d1 - 5 * d3 + d5
        )
    }

    /// `Aᵀ m` for one column of six values.
    @inline(__always)
    static func outputRows(
        _ m0: SIMD16<Float>, _ m1: SIMD16<Float>, _ m2: SIMD16<Float>, _ m3: SIMD16<Float>, _ m4: SIMD16<Float>,
        _ m5: SIMD16<Float>
    ) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let s12 = m1 + m2
        let d12 = m1 - m2
        let s34 = m3 + m4
        let d34 = m3 - m4
        return (m0 + s12 + s34, d12 + 2 * d34, s12 + 4 * s34, d12 + 8 * d34 + m5)
    }

    /// Transforms the input tiles of channels `channels` of one image into
    /// `v[ξ][c][t]` (row stride `tileStride`, channel stride `tileStride`, position stride
    /// `C · tileStride`). `scratch` holds ``scratchCount`` floats.
    static func transformInput(
        geometry g: Conv2DGeometry, input: UnsafePointer<Float>, channels: Range<Int>, v: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let (tileRows, tileColumns, tileCount, tileStride) = tiles(g)
        _ = tileRows
        let inH = g.inputHeight
        let inW = g.inputWidth
        let positionStride = g.inputChannels * tileStride
        let raw = UnsafeMutableRawPointer(scratch)
        for channel in channels {
            let plane = input + channel * inH * inW
            var firstTile = 0
            while firstTile < tileStride {
                // Gather d[i][j][lane] for 16 tiles (zeros outside the image and past the last tile).
                for lane in 0..<lanes {
                    let tile = firstTile + lane
                    if tile >= tileCount {
                        for p in 0..<positions { scratch[p * lanes + lane] = 0 }
                        continue
                    }
                    let y0 = (tile / tileColumns) * outputTile - g.padTop
                    let x0 = (tile % tileColumns) * outputTile - g.padLeft
                    if y0 >= 0 && x0 >= 0 && y0 + inputTile <= inH && x0 + inputTile <= inW {
                        var source = plane + y0 * inW + x0
                        for i in 0..<inputTile {
                            for j in 0..<inputTile { scratch[(i * inputTile + j) * lanes + lane] = source[j] }
                            source += inW
                        }
                    } else {
                        for i in 0..<inputTile {
                            let y = y0 + i
                            for j in 0..<inputTile {
                                let x = x0 + j
                                scratch[(i * inputTile + j) * lanes + lane] =
                                    (y >= 0 && y < inH && x >= 0 && x < inW) ? plane[y * inW + x] : 0
                            }
                        }
                    }
                }
                @inline(__always) func load(_ p: Int) -> SIMD16<Float> {
                    UnsafeRawPointer(raw + p * lanes * 4).load(as: SIMD16<Float>.self)
                }
                @inline(__always) func store(_ value: SIMD16<Float>, _ p: Int) {
                    raw.storeBytes(of: value, toByteOffset: p * lanes * 4, as: SIMD16<Float>.self)
                }
                // Rows: h[i][·] = (d[i][·]) Bᵀ applied along j, in place.
                for i in 0..<inputTile {
                    let p = i * inputTile
                    let r = inputRows(load(p), load(p + 1), load(p + 2), load(p + 3), load(p + 4), load(p + 5))
                    store(r.0, p)
                    store(r.1, p + 1)
                    store(r.2, p + 2)
                    store(r.3, p + 3)
                    store(r.4, p + 4)
                    store(r.5, p + 5)
                }
                // Columns: V[ξr][ξc] = Bᵀ h along i, stored to the position matrices.
                let destination = UnsafeMutableRawPointer(v + channel * tileStride + firstTile)
                for column in 0..<inputTile {
                    let r = inputRows(
                        load(column), load(6 + column), load(12 + column), load(18 + column), load(24 + column),
                        load(30 + column))
                    destination.storeBytes(
                        of: r.0, toByteOffset: (0 * 6 + column) * positionStride * 4, as: SIMD16<Float>.self)
                    destination.storeBytes(
                        of: r.1, toByteOffset: (1 * 6 + column) * positionStride * 4, as: SIMD16<Float>.self)
                    destination.storeBytes(
                        of: r.2, toByteOffset: (2 * 6 + column) * positionStride * 4, as: SIMD16<Float>.self)
                    destination.storeBytes(
                        of: r.3, toByteOffset: (3 * 6 + column) * positionStride * 4, as: SIMD16<Float>.self)
                    destination.storeBytes(
                        of: r.4, toByteOffset: (4 * 6 + column) * positionStride * 4, as: SIMD16<Float>.self)
                    destination.storeBytes(
                        of: r.5, toByteOffset: (5 * 6 + column) * positionStride * 4, as: SIMD16<Float>.self)
                }
                firstTile += lanes
            }
        }
    }

    /// Transforms `m[ξ][k][t]` back into output channels `channels` of one image, adding `bias`;
    /// `scratch` holds ``scratchCount`` floats.
    static func transformOutput(
        geometry g: Conv2DGeometry, m: UnsafePointer<Float>, channels: Range<Int>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) {
        let (_, tileColumns, tileCount, tileStride) = tiles(g)
        let outH = g.outputHeight
        let outW = g.outputWidth
        let positionStride = g.outputChannels * tileStride
        let raw = UnsafeMutableRawPointer(scratch)
        for channel in channels {
            let plane = output + channel * outH * outW
            let b = SIMD16<Float>(repeating: bias?[channel] ?? 0)
            let source = UnsafeRawPointer(m + channel * tileStride)
            var firstTile = 0
            while firstTile < tileCount {
                @inline(__always) func load(_ p: Int) -> SIMD16<Float> {
                    source.load(fromByteOffset: (p * positionStride + firstTile) * 4, as: SIMD16<Float>.self)
                }
                // Rows first: o[ξr][a] = Aᵀ along ξc, kept in scratch (6 × 4 vectors).
                for row in 0..<inputTile {
                    let p = row * inputTile
                    let o = outputRows(load(p), load(p + 1), load(p + 2), load(p + 3), load(p + 4), load(p + 5))
                    raw.storeBytes(of: o.0, toByteOffset: (row * 4 + 0) * lanes * 4, as: SIMD16<Float>.self)
                    raw.storeBytes(of: o.1, toByteOffset: (row * 4 + 1) * lanes * 4, as: SIMD16<Float>.self)
                    raw.storeBytes(of: o.2, toByteOffset: (row * 4 + 2) * lanes * 4, as: SIMD16<Float>.self)
                    raw.storeBytes(of: o.3, toByteOffset: (row * 4 + 3) * lanes * 4, as: SIMD16<Float>.self)
                }
                @inline(__always) func loadScratch(_ p: Int) -> SIMD16<Float> {
                    UnsafeRawPointer(raw + p * lanes * 4).load(as: SIMD16<Float>.self)
                }
                // Then columns: y[b][a] = Aᵀ along ξr; results to scratch positions 24 + b·4 + a.
                for a in 0..<4 {
                    let y = outputRows(
                        loadScratch(a), loadScratch(4 + a), loadScratch(8 + a), loadScratch(12 + a),
                        loadScratch(16 + a), loadScratch(20 + a))
                    raw.storeBytes(of: y.0 + b, toByteOffset: (24 + 0 * 4 + a) * lanes * 4, as: SIMD16<Float>.self)
                    raw.storeBytes(of: y.1 + b, toByteOffset: (24 + 1 * 4 + a) * lanes * 4, as: SIMD16<Float>.self)
                    raw.storeBytes(of: y.2 + b, toByteOffset: (24 + 2 * 4 + a) * lanes * 4, as: SIMD16<Float>.self)
                    raw.storeBytes(of: y.3 + b, toByteOffset: (24 + 3 * 4 + a) * lanes * 4, as: SIMD16<Float>.self)
                }
                // Scatter the 4 × 4 blocks.
                let y = scratch + 24 * lanes
                for lane in 0..<min(lanes, tileCount - firstTile) {
                    let tile = firstTile + lane
                    let oy = (tile / tileColumns) * outputTile
                    let ox = (tile % tileColumns) * outputTile
                    let rows = min(outputTile, outH - oy)
                    let columns = min(outputTile, outW - ox)
                    var destination = plane + oy * outW + ox
                    if columns == outputTile {
                        for r in 0..<rows {
                            destination[0] = y[(r * 4 + 0) * lanes + lane]
                            destination[1] = y[(r * 4 + 1) * lanes + lane]
                            destination[2] = y[(r * 4 + 2) * lanes + lane]
                            destination[3] = y[(r * 4 + 3) * lanes + lane]
                            destination += outW
                        }
                    } else {
                        for r in 0..<rows {
                            for c in 0..<columns { destination[c] = y[(r * 4 + c) * lanes + lane] }
                            destination += outW
                        }
                    }
                }
                firstTile += lanes
            }
        }
    }
}

/// Winograd-transformed weights, made once when the plan is made.
final class WinogradWeights: @unchecked Sendable {
    /// `U[ξ][k][c]`: 36 matrices of K × C.
    let values: UnsafeMutablePointer<Float>
    let count: Int

    init(weights: UnsafePointer<Float>, geometry g: Conv2DGeometry) {
        count = WinogradConv2D.positions * g.outputChannels * g.inputChannels
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        values = raw.bindMemory(to: Float.self, capacity: max(1, count))
        WinogradConv2D.transformWeights(
            weights, outputChannels: g.outputChannels, inputChannels: g.inputChannels, into: values)
    }

    deinit { values.deallocate() }
}
