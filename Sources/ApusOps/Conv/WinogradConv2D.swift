import CApusKernels

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
    /// Whether `g` can run as Winograd F(4×4, 3×3).
    static func supports(_ g: Conv2DGeometry) -> Bool {
        g.groups == 1 && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideHeight == 1 && g.strideWidth == 1
            && g.dilationHeight == 1 && g.dilationWidth == 1 && g.outputHeight > 0 && g.outputWidth > 0
    }

    /// Tiles per image: rows, columns, total, and the row stride of the transformed matrices. The
    /// transforms store whole vectors of 16 tile columns at a time, the lanes past a tile row's end
    /// spilling into the next row (overwritten when that row is stored) or, after the last row,
    /// into the 15 or more slack columns this stride leaves.
    static func tiles(_ g: Conv2DGeometry) -> (rows: Int, columns: Int, count: Int, stride: Int) {
        let rows = (g.outputHeight + outputTile - 1) / outputTile
        let columns = (g.outputWidth + outputTile - 1) / outputTile
        let count = rows * columns
        return (rows, columns, count, (count + lanes - 1 + lanes - 1) / lanes * lanes)
    }

    /// Floats from one tile position's matrix to the next in `v` and `m`: `channels` rows of
    /// `tileStride`, plus one vector when that would make the stride an even number of vectors.
    /// The transforms touch all 36 matrices for every 16 tiles; with a stride of a multiple of
    /// 4 KB (64 channels × 224 tiles, every ResNet layer at 56²) all 36 lines fall in one set of the
    /// 8-way L1 cache and evict each other on every access (input transform of 64 × 56² 267 → 59 µs,
    /// output 90 → 35 µs with the extra vector). An odd number of vectors puts the 36 lines in 36
    /// different sets.
    static func positionStride(channels: Int, tileStride: Int) -> Int {
        let stride = channels * tileStride
        return (stride / lanes) % 2 == 0 ? stride + lanes : stride
    }

    /// The zero-padded input plane of one channel, split into four column phases: phase `p`, row
    /// `y`, column `q` holds padded column `4q + p`, so the six columns of tile `x` are phase
    /// `j % 4` at `x + j / 4` — contiguous over tiles.
    struct PhasePlane {
        let rows: Int
        /// Floats per phase row: the tile columns + 1, + one vector of slack for the shifted loads.
        let rowStride: Int
        var phaseStride: Int { rows * rowStride }
        var floatCount: Int { 4 * phaseStride }

        init(_ g: Conv2DGeometry) {
            let t = WinogradConv2D.tiles(g)
            rows = t.rows * outputTile + 2
            rowStride = (t.columns + 1 + lanes + lanes - 1) / lanes * lanes
        }
    }

    /// Padded columns of one input row as the input transform splits it: the tile columns' six
    /// columns each, rounded up to whole vectors.
    static func lineCount(_ g: Conv2DGeometry) -> Int {
        ((tiles(g).columns * outputTile + 2) + lanes - 1) / lanes * lanes
    }

    /// Floats of scratch one transform task needs: the phase plane and one padded row (input
    /// tasks) or 40 vectors (output tasks).
    static func scratchCount(_ g: Conv2DGeometry) -> Int {
        max(PhasePlane(g).floatCount + lineCount(g), 40 * lanes)
    }

    /// Transforms ONNX weights `[K, C, 3, 3]` into `U[ξ][k][c]` (36 × K × C), in Double: the
    /// (output channel, input channel) pairs `pairs` (all of them by default), eight at a time,
    /// each of the 36 planes written contiguously. Disjoint ranges may run in parallel.
    ///
    /// Every value is computed with the same Double operations in the same order as the plain
    /// formula (each sum starting from +0, `G` times the filter, then that times `Gᵀ`) and rounded
    /// to Float once: ``transformFilters(_:into:)``.
    static func transformWeights(
        _ weights: UnsafePointer<Float>, outputChannels: Int, inputChannels: Int, into u: UnsafeMutablePointer<Float>,
        pairs range: Range<Int>? = nil
    ) {
        let pairs = outputChannels * inputChannels
        let range = range ?? 0..<pairs
        withUnsafeTemporaryAllocation(of: SIMD8<Double>.self, capacity: 9) { f in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 36) { out in
                let f = f.baseAddress.unsafelyUnwrapped
                let out = out.baseAddress.unsafelyUnwrapped
                // The filter that lanes past the last pair or row read.
                let zero: UnsafePointer<Float> = Self.zeroFilter
                var pair = range.lowerBound
                while pair < range.upperBound {
                    let count = min(8, range.upperBound - pair)
                    gather(
                        f, zero: zero, count: count, stride: 9,
                        from: weights + pair * 9)
                    transformFilters(f, into: out)
                    if count == 8 {
                        for position in 0..<36 {
                            UnsafeMutableRawPointer(u + position * pairs + pair).storeBytes(
                                of: out[position], as: SIMD8<Float>.self)
                        }
                    } else {
                        for position in 0..<36 {
                            for lane in 0..<count { u[position * pairs + pair + lane] = out[position][lane] }
                        }
                    }
                    pair += 8
                }
            }
        }
    }

    /// Transforms the weights straight into the packed layout of the AVX-512 kernel: matrix `ξ` of
    /// `packed` (K × C) gets `U[ξ]`, for the row panels `panels` (eight output channels each, one
    /// per lane; rows past K are zero, as ``PackedMatrix`` pads them). The same values as
    /// ``transformWeights(_:outputChannels:inputChannels:into:pairs:)`` followed by packing, without
    /// the intermediate matrices. Disjoint panel ranges may run in parallel.
    static func packWeights(
        _ weights: UnsafePointer<Float>, outputChannels: Int, inputChannels: Int, into packed: PackedMatrix,
        panels: Range<Int>
    ) {
        precondition(
            packed.rows == outputChannels && packed.columns == inputChannels && packed.matrixCount == positions,
            "packed matrices of the wrong size")
        precondition(PackedGemm.panelRows == 8, "one panel row per lane")
        withUnsafeTemporaryAllocation(of: SIMD8<Double>.self, capacity: 9) { f in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 36) { out in
                let f = f.baseAddress.unsafelyUnwrapped
                let out = out.baseAddress.unsafelyUnwrapped
                // The filter that lanes past the last pair or row read.
                let zero: UnsafePointer<Float> = Self.zeroFilter
                let destination = UnsafeMutableRawPointer(packed.values)
                for panel in panels {
                    let firstRow = panel * 8
                    let count = min(8, outputChannels - firstRow)
                    for channel in 0..<inputChannels {
                        // Lanes past K read a zero filter: their transform is +0, the packing's padding.
                        gather(
                            f, zero: zero, count: count, stride: inputChannels * 9,
                            from: weights + (firstRow * inputChannels + channel) * 9)
                        transformFilters(f, into: out)
                        let offset = packed.offset(panel: panel, column: channel)
                        for position in 0..<36 {
                            destination.storeBytes(
                                of: out[position], toByteOffset: (position * packed.stride + offset) * 4,
                                as: SIMD8<Float>.self)
                        }
                    }
                }
            }
        }
    }

    /// Nine zeros: the filter of lanes past the last pair or row (never written after this).
    nonisolated(unsafe) static let zeroFilter: UnsafePointer<Float> = {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: 9)
        p.initialize(repeating: 0, count: 9)
        return UnsafePointer(p)
    }()

    /// Loads eight filters into `f` as Double, one per lane, element by element (`f[e]` holds
    /// element `e` of each): lane `l < count` from `first + l · stride`, the others from `zero`.
    /// Whole vectors are built in registers, not lane by lane through memory.
    @inline(__always)
    static func gather(
        _ f: UnsafeMutablePointer<SIMD8<Double>>, zero: UnsafePointer<Float>, count: Int, stride: Int,
        from first: UnsafePointer<Float>
    ) {
        @inline(__always) func lane(_ l: Int) -> UnsafePointer<Float> { l < count ? first + l * stride : zero }
        let p0 = lane(0)
        let p1 = lane(1)
        let p2 = lane(2)
        let p3 = lane(3)
        let p4 = lane(4)
        let p5 = lane(5)
        let p6 = lane(6)
        let p7 = lane(7)
        for e in 0..<9 {
            f[e] = SIMD8<Double>(
                Double(p0[e]), Double(p1[e]), Double(p2[e]), Double(p3[e]), Double(p4[e]), Double(p5[e]),
                Double(p6[e]), Double(p7[e]))
        }
    }

    /// `U = G g Gᵀ` for eight filters, one per lane: `f[i · 3 + j]` holds element (i, j) of
    /// each, `u[r · 6 + c]` receives element (r, c) of each transform. Each sum starts from +0 and
    /// adds its three products in order (no fused multiply-adds), so every lane is bitwise the
    /// plain scalar formula, zeros' signs and products of 0 and ∞ included.
    @inline(__always)
    static func transformFilters(_ f: UnsafePointer<SIMD8<Double>>, into u: UnsafeMutablePointer<SIMD8<Float>>) {
        typealias V = SIMD8<Double>
        // G (6 × 3): rows (1/4, 0, 0), (−1/6, −1/6, −1/6), (−1/6, 1/6, −1/6), (1/24, 1/12, 1/6),
        // (1/24, −1/12, 1/6), (0, 0, 1).
        @inline(__always) func left(_ a: Double, _ b: Double, _ c: Double, _ x: V, _ y: V, _ z: V) -> V {
            var sum = V()
            sum += a * x
            sum += b * y
            sum += c * z
            return sum
        }
        @inline(__always) func right(_ x: V, _ y: V, _ z: V, _ a: Double, _ b: Double, _ c: Double) -> V {
            var sum = V()
            sum += x * a
            sum += y * b
            sum += z * c
            return sum
        }
        // t = G · g, one row (three columns) per output row of G.
        @inline(__always) func row(_ a: Double, _ b: Double, _ c: Double) -> (V, V, V) {
            (
                left(a, b, c, f[0], f[3], f[6]), left(a, b, c, f[1], f[4], f[7]),
                left(a, b, c, f[2], f[5], f[8])
            )
        }
        // One row of U = t · Gᵀ.
        @inline(__always) func store(_ r: Int, _ t: (V, V, V)) {
            u[r * 6] = SIMD8<Float>(right(t.0, t.1, t.2, 1.0 / 4, 0, 0))
            u[r * 6 + 1] = SIMD8<Float>(right(t.0, t.1, t.2, -1.0 / 6, -1.0 / 6, -1.0 / 6))
            u[r * 6 + 2] = SIMD8<Float>(right(t.0, t.1, t.2, -1.0 / 6, 1.0 / 6, -1.0 / 6))
            u[r * 6 + 3] = SIMD8<Float>(right(t.0, t.1, t.2, 1.0 / 24, 1.0 / 12, 1.0 / 6))
            u[r * 6 + 4] = SIMD8<Float>(right(t.0, t.1, t.2, 1.0 / 24, -1.0 / 12, 1.0 / 6))
            u[r * 6 + 5] = SIMD8<Float>(right(t.0, t.1, t.2, 0, 0, 1))
        }
        store(0, row(1.0 / 4, 0, 0))
        store(1, row(-1.0 / 6, -1.0 / 6, -1.0 / 6))
        store(2, row(-1.0 / 6, 1.0 / 6, -1.0 / 6))
        store(3, row(1.0 / 24, 1.0 / 12, 1.0 / 6))
        store(4, row(1.0 / 24, -1.0 / 12, 1.0 / 6))
        store(5, row(0, 0, 1))
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

    /// Whether the transforms run as C kernels (the same bits as the Swift code below): the
    /// AVX-512 ones (`winograd.c`) where ``PackedGemm/hasAVX512``, else the AVX2 ones
    /// (`winograd_avx2.c`) where the CPU has AVX2. `APUS_VECTOR_WINOGRAD=0` keeps the Swift ones.
    static let usesVectorTransforms: Bool = {
        if EnvironmentSwitch.isOff("APUS_VECTOR_WINOGRAD") { return false }
        return PackedGemm.hasAVX512 || PackedGemm.cpuHasAVX2
    }()

    /// The layout the AVX-512 transforms take, with `channels` channels between tile positions.
    static func kernelGeometry(_ g: Conv2DGeometry, channels: Int) -> apus_winograd_geometry {
        let (tileRows, tileColumns, _, tileStride) = tiles(g)
        let plane = PhasePlane(g)
        return apus_winograd_geometry(
            input_height: g.inputHeight, input_width: g.inputWidth, output_height: g.outputHeight,
            output_width: g.outputWidth, pad_top: g.padTop, pad_left: g.padLeft, tile_rows: tileRows,
            tile_columns: tileColumns, tile_stride: tileStride,
            position_stride: positionStride(channels: channels, tileStride: tileStride),
            plane_rows: plane.rows, row_stride: plane.rowStride,
            line_count: lineCount(g))
    }

    /// Transforms the input tiles of channels `channels` of one image into `v[ξ][c][t]` (channel
    /// stride `tileStride`, position stride ``positionStride(channels:tileStride:)``), sixteen tile
    /// columns per vector, on a C kernel when `vector` (AVX-512 when `avx512`, else AVX2), else in
    /// Swift (the same bits).
    /// `scratch` holds ``scratchCount(_:)`` floats.
    static func transformInput(
        geometry g: Conv2DGeometry, input: UnsafePointer<Float>, channels: Range<Int>, v: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, vector: Bool = usesVectorTransforms,
        avx512: Bool = PackedGemm.hasAVX512
    ) {
        if vector {
            var kernel = kernelGeometry(g, channels: g.inputChannels)
            let transform = avx512 ? apus_winograd_input_avx512 : apus_winograd_input_avx2
            transform(&kernel, input, channels.lowerBound, channels.count, v, scratch)
            return
        }
        let (tileRows, tileColumns, _, tileStride) = tiles(g)
        let inH = g.inputHeight
        let inW = g.inputWidth
        let positionStride = Self.positionStride(channels: g.inputChannels, tileStride: tileStride)
        let plane = PhasePlane(g)
        let phases = UnsafeMutableRawPointer(scratch)
        // One padded input row, whole vectors long, deinterleaved into the phases 16 columns at a
        // time; it lives after the phase plane in the scratch.
        let lineCount = Self.lineCount(g)
        let line = scratch + plane.floatCount
        let written = lineCount / 4
        let copyStart = min(g.padLeft, lineCount)
        let copyCount = max(0, min(inW, lineCount - copyStart))
        // What no channel writes is zeroed once per call: the rows outside the image, each row's
        // columns after its last phase column, and the padding either side of the row in `line`.
        for y in 0..<plane.rows {
            let inside = y >= g.padTop && y - g.padTop < inH
            for phase in 0..<4 {
                let row = scratch + phase * plane.phaseStride + y * plane.rowStride
                if inside {
                    (row + written).update(repeating: 0, count: plane.rowStride - written)
                } else {
                    row.update(repeating: 0, count: plane.rowStride)
                }
            }
        }
        line.update(repeating: 0, count: lineCount)
        let imageRows = min(g.padTop, plane.rows)..<min(plane.rows, g.padTop + inH)
        for channel in channels {
            let source = input + channel * inH * inW
            for y in imageRows {
                (line + copyStart).update(from: source + (y - g.padTop) * inW, count: copyCount)
                let rows = UnsafeMutableRawPointer(scratch + y * plane.rowStride)
                let phaseBytes = plane.phaseStride * 4
                var x = 0
                while x < lineCount {
                    let v = UnsafeRawPointer(line + x).loadUnaligned(as: SIMD16<Float>.self)
                    let even = v.evenHalf
                    let odd = v.oddHalf
                    let offset = x  // (x / 4) floats = x bytes
                    rows.storeBytes(of: even.evenHalf, toByteOffset: offset, as: SIMD4<Float>.self)
                    rows.storeBytes(of: odd.evenHalf, toByteOffset: phaseBytes + offset, as: SIMD4<Float>.self)
                    rows.storeBytes(of: even.oddHalf, toByteOffset: 2 * phaseBytes + offset, as: SIMD4<Float>.self)
                    rows.storeBytes(of: odd.oddHalf, toByteOffset: 3 * phaseBytes + offset, as: SIMD4<Float>.self)
                    x += lanes
                }
            }
            @inline(__always) func load(_ phase: Int, _ y: Int, _ q: Int) -> SIMD16<Float> {
                phases.loadUnaligned(
                    fromByteOffset: (phase * plane.phaseStride + y * plane.rowStride + q) * 4, as: SIMD16<Float>.self)
            }
            let destination = UnsafeMutableRawPointer(v + channel * tileStride)
            for tileRow in 0..<tileRows {
                let y0 = tileRow * outputTile
                var q0 = 0
                while q0 < tileColumns {
                    // Column j of every tile: phase j % 4, shifted by j / 4; Bᵀ down the six rows.
                    @inline(__always) func column(_ j: Int) -> (
                        SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>
                    ) {
                        let phase = j & 3
                        let q = q0 + (j >> 2)
                        return inputRows(
                            load(phase, y0, q), load(phase, y0 + 1, q), load(phase, y0 + 2, q), load(phase, y0 + 3, q),
                            load(phase, y0 + 4, q), load(phase, y0 + 5, q))
                    }
                    let c0 = column(0)
                    let c1 = column(1)
                    let c2 = column(2)
                    let c3 = column(3)
                    let c4 = column(4)
                    let c5 = column(5)
                    let base = (tileRow * tileColumns + q0) * 4
                    @inline(__always) func store(
                        _ row: Int,
                        _ values: (
                            SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>
                        )
                    ) {
                        let offset = base + row * 6 * positionStride * 4
                        let step = positionStride * 4
                        destination.storeBytes(of: values.0, toByteOffset: offset, as: SIMD16<Float>.self)
                        destination.storeBytes(of: values.1, toByteOffset: offset + step, as: SIMD16<Float>.self)
                        destination.storeBytes(of: values.2, toByteOffset: offset + 2 * step, as: SIMD16<Float>.self)
                        destination.storeBytes(of: values.3, toByteOffset: offset + 3 * step, as: SIMD16<Float>.self)
                        destination.storeBytes(of: values.4, toByteOffset: offset + 4 * step, as: SIMD16<Float>.self)
                        destination.storeBytes(of: values.5, toByteOffset: offset + 5 * step, as: SIMD16<Float>.self)
                    }
                    // Bᵀ along each transformed row: V[ξr][ξc].
                    store(0, inputRows(c0.0, c1.0, c2.0, c3.0, c4.0, c5.0))
                    store(1, inputRows(c0.1, c1.1, c2.1, c3.1, c4.1, c5.1))
                    store(2, inputRows(c0.2, c1.2, c2.2, c3.2, c4.2, c5.2))
                    store(3, inputRows(c0.3, c1.3, c2.3, c3.3, c4.3, c5.3))
                    store(4, inputRows(c0.4, c1.4, c2.4, c3.4, c4.4, c5.4))
                    store(5, inputRows(c0.5, c1.5, c2.5, c3.5, c4.5, c5.5))
                    q0 += lanes
                }
            }
        }
    }

    /// Transforms `m[ξ][k][t]` back into output channels `channels` of one image, adding `bias`,
    /// sixteen tile columns per vector; `scratch` holds ``scratchCount(_:)`` floats.
    static func transformOutput(
        geometry g: Conv2DGeometry, m: UnsafePointer<Float>, channels: Range<Int>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, vector: Bool = usesVectorTransforms,
        avx512: Bool = PackedGemm.hasAVX512
    ) {
        if vector {
            var kernel = kernelGeometry(g, channels: g.outputChannels)
            let transform = avx512 ? apus_winograd_output_avx512 : apus_winograd_output_avx2
            transform(&kernel, m, channels.lowerBound, channels.count, bias, output)
            return
        }
        let (tileRows, tileColumns, _, tileStride) = tiles(g)
        let outH = g.outputHeight
        let outW = g.outputWidth
        let positionStride = Self.positionStride(channels: g.outputChannels, tileStride: tileStride)
        let raw = UnsafeMutableRawPointer(scratch)
        for channel in channels {
            let plane = output + channel * outH * outW
            let b = SIMD16<Float>(repeating: bias?[channel] ?? 0)
            let source = UnsafeRawPointer(m + channel * tileStride)
            for tileRow in 0..<tileRows {
                var q0 = 0
                while q0 < tileColumns {
                    let firstTile = tileRow * tileColumns + q0
                    @inline(__always) func load(_ p: Int) -> SIMD16<Float> {
                        source.loadUnaligned(
                            fromByteOffset: (p * positionStride + firstTile) * 4, as: SIMD16<Float>.self)
                    }
                    // Aᵀ along each row of M: o[ξr][a], then down the columns: y[b][a] (+ bias).
                    let o0 = outputRows(load(0), load(1), load(2), load(3), load(4), load(5))
                    let o1 = outputRows(load(6), load(7), load(8), load(9), load(10), load(11))
                    let o2 = outputRows(load(12), load(13), load(14), load(15), load(16), load(17))
                    let o3 = outputRows(load(18), load(19), load(20), load(21), load(22), load(23))
                    let o4 = outputRows(load(24), load(25), load(26), load(27), load(28), load(29))
                    let o5 = outputRows(load(30), load(31), load(32), load(33), load(34), load(35))
                    let ya0 = outputRows(o0.0, o1.0, o2.0, o3.0, o4.0, o5.0)
                    let ya1 = outputRows(o0.1, o1.1, o2.1, o3.1, o4.1, o5.1)
                    let ya2 = outputRows(o0.2, o1.2, o2.2, o3.2, o4.2, o5.2)
                    let ya3 = outputRows(o0.3, o1.3, o2.3, o3.3, o4.3, o5.3)
                    // y[b][a] to scratch vector b·4 + a.
                    @inline(__always) func put(_ value: SIMD16<Float>, _ index: Int) {
                        raw.storeBytes(of: value + b, toByteOffset: index * lanes * 4, as: SIMD16<Float>.self)
                    }
                    put(ya0.0, 0)
                    put(ya1.0, 1)
                    put(ya2.0, 2)
                    put(ya3.0, 3)
                    put(ya0.1, 4)
                    put(ya1.1, 5)
                    put(ya2.1, 6)
                    put(ya3.1, 7)
                    put(ya0.2, 8)
                    put(ya1.2, 9)
                    put(ya2.2, 10)
                    put(ya3.2, 11)
                    put(ya0.3, 12)
                    put(ya1.3, 13)
                    put(ya2.3, 14)
                    put(ya3.3, 15)
                    // Interleave the four columns of each output row of the sixteen tiles.
                    let count = min(lanes, tileColumns - q0)
                    let oy = tileRow * outputTile
                    let ox = q0 * outputTile
                    let rows = min(outputTile, outH - oy)
                    let fullTiles = min(count, (outW - ox) / outputTile)
                    for r in 0..<rows {
                        let destination = plane + (oy + r) * outW + ox
                        let y = scratch + r * 4 * lanes
                        for lane in 0..<fullTiles {
                            destination[lane * 4] = y[lane]
                            destination[lane * 4 + 1] = y[lanes + lane]
                            destination[lane * 4 + 2] = y[2 * lanes + lane]
                            destination[lane * 4 + 3] = y[3 * lanes + lane]
                        }
                        if fullTiles < count {
                            let lane = fullTiles
                            for a in 0..<(outW - ox - lane * 4) { destination[lane * 4 + a] = y[a * lanes + lane] }
                        }
                    }
                    q0 += lanes
                }
            }
        }
    }
}

/// Winograd-transformed weights, made once when the plan is made.
final class WinogradWeights: @unchecked Sendable {
    /// `U[ξ][k][c]`: 36 matrices of K × C.
    let values: UnsafeMutablePointer<Float>
    let count: Int

    /// Transforms `weights` on up to `threadCount` threads (ranges of filter pairs).
    init(weights: UnsafePointer<Float>, geometry g: Conv2DGeometry, threadCount: Int = 1) {
        count = WinogradConv2D.positions * g.outputChannels * g.inputChannels
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        values = raw.bindMemory(to: Float.self, capacity: max(1, count))
        let pairs = g.outputChannels * g.inputChannels
        let pairsPerTask = 2048
        nonisolated(unsafe) let weights = weights
        nonisolated(unsafe) let values = values
        ComputeContext(threadCount: threadCount).parallelFor((pairs + pairsPerTask - 1) / pairsPerTask) { task in
            let first = task * pairsPerTask
            WinogradConv2D.transformWeights(
                weights, outputChannels: g.outputChannels, inputChannels: g.inputChannels, into: values,
                pairs: first..<min(pairs, first + pairsPerTask))
        }
    }

    /// The 36 transformed K × C matrices packed for OpenBLAS's kernel, as one 36·K × C
    /// ``BLASPackedMatrix`` (position `ξ` in rows `ξ·K ..< (ξ + 1)·K`; K a multiple of 4):
    /// transformed a block of output channels at a time into a small buffer and packed from
    /// there, never as a whole (four times the weights' size) first. With `transformed` (the
    /// same weights already transformed and packed for the AVX-512 kernel: prepacked in an
    /// artifact) the rows are copied out of its panels instead of transformed again — the same
    /// floats, much less work (the transform is slow in a build for the x86-64 baseline). `nil`
    /// when that kernel is not available.
    static func blasPacked(
        weights: UnsafePointer<Float>, geometry g: Conv2DGeometry, transformed: PackedMatrix? = nil,
        threadCount: Int = 1
    ) -> BLASPackedMatrix? {
        let (k, c) = (g.outputChannels, g.inputChannels)
        precondition(k % 4 == 0, "output channels in whole panels of four")
        // About 256 K floats of transformed weights per block.
        let blockRows = min(k, max(4, (1 << 18) / max(1, WinogradConv2D.positions * c) / 4 * 4))
        nonisolated(unsafe) let weights = weights
        return BLASPackedMatrix(
            rows: WinogradConv2D.positions * k, columns: c, tasks: (k + blockRows - 1) / blockRows,
            threadCount: threadCount
        ) { task, matrix in
            let first = task * blockRows
            let rows = min(blockRows, k - first)
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: WinogradConv2D.positions * rows * c)
            defer { buffer.deallocate() }
            if let transformed {
                // U[ξ][row][c] from the panels: eight rows per panel, column by column within
                // blocks of APUS_GEMM_BLOCK_COLUMNS.
                let block = Int(APUS_GEMM_BLOCK_COLUMNS)
                for position in 0..<WinogradConv2D.positions {
                    let source = UnsafePointer(transformed.values) + position * transformed.stride
                    for row in first..<first + rows {
                        let destination = buffer + (position * rows + row - first) * c
                        let (panel, lane) = row.quotientAndRemainder(dividingBy: PackedGemm.panelRows)
                        var column = 0
                        while column < c {
                            let start = source + transformed.offset(panel: panel, column: column) + lane
                            let width = min(block - column % block, c - column)
                            for j in 0..<width { destination[column + j] = start[j * PackedGemm.panelRows] }
                            column += width
                        }
                    }
                }
            } else {
                // Rows first ..< first + rows as a K' = rows problem: U[ξ][row][c] in the buffer.
                WinogradConv2D.transformWeights(
                    weights + first * c * 9, outputChannels: rows, inputChannels: c, into: buffer)
            }
            for position in 0..<WinogradConv2D.positions {
                matrix.pack(
                    buffer + position * rows * c, firstRow: position * k + first, count: rows, rowStride: c)
            }
        }
    }

    /// The transformed weights of `g` packed for the AVX-512 kernel (36 matrices of K × C),
    /// transformed straight into place on up to `threadCount` threads (ranges of row panels).
    static func packed(weights: UnsafePointer<Float>, geometry g: Conv2DGeometry, threadCount: Int = 1)
        -> PackedMatrix
    {
        let packed = PackedMatrix(
            rows: g.outputChannels, columns: g.inputChannels, matrixCount: WinogradConv2D.positions)
        let panels = (g.outputChannels + PackedGemm.panelRows - 1) / PackedGemm.panelRows
        let panelsPerTask = 2
        nonisolated(unsafe) let weights = weights
        ComputeContext(threadCount: threadCount).parallelFor((panels + panelsPerTask - 1) / panelsPerTask) { task in
            let first = task * panelsPerTask
            WinogradConv2D.packWeights(
                weights, outputChannels: g.outputChannels, inputChannels: g.inputChannels, into: packed,
                panels: first..<min(panels, first + panelsPerTask))
        }
        return packed
    }

    deinit { values.deallocate() }
}
