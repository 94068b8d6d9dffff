import CApusKernels

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A 2-D convolution with its algorithm and work split chosen once, at plan time.
///
/// The output of each image is cut into tiles (groups × output-channel rows × spatial columns)
/// whose sizes depend only on the geometry, and each tile is one single-threaded sgemm followed
/// by the fused epilogue while the tile is in cache; so the result is bitwise the same for any
/// thread count.
public struct Conv2DPlan: Sendable {
    /// How the convolution is computed.
    public enum Algorithm: Sendable, Hashable {
        /// 1×1, stride 1, no padding: `W[M×C] × X[C×HW]` straight from the input.
        case pointwise
        /// im2col of a column tile into the workspace, then sgemm.
        case im2col
        /// One packed GEMM per kernel tap, each reading a window of the input laid out in strided
        /// planes (``TapPlanes``), summed tap after tap in the kernel: strided and wider-than-1×1
        /// layers without the column matrix (needs the weights and AVX-512; one group).
        case taps
        /// One channel at a time with a SIMD kernel (groups == C_in == C_out).
        case depthwise
        /// Winograd F(4×4, 3×3): transformed input tiles, 36 sgemm calls, transformed back
        /// (3×3, stride 1, undilated, ungrouped; needs the weights when the plan is made).
        case winograd
        /// Direct convolution for layers with at most four input channels (a network's stem): in
        /// AVX-512, eight output channels per pass (``DirectConvKernel``), or without AVX-512 in
        /// AVX2 with 16 output channels in the lanes (``AVX2StemKernel``, needs the weights).
        case direct
    }

    /// The sizes.
    public let geometry: Conv2DGeometry
    /// The chosen algorithm.
    public let algorithm: Algorithm
    /// Output channels per row tile (within a group).
    let rowTile: Int
    /// Row tiles per group.
    let rowTileCount: Int
    /// Output positions per column tile.
    let columnTile: Int
    /// Column tiles per image.
    let columnTileCount: Int
    /// The transformed weights of the ``Algorithm/winograd`` path.
    let winogradWeights: WinogradWeights?
    /// Whether ``run(input:weights:bias:residual:output:activation:context:)`` reads only the
    /// plan's own packed or transformed weights, never the `weights` it is passed.
    public var readsOwnWeights: Bool {
        packedWeights != nil || winogradWeights != nil || stemKernel != nil || blasPackedWeights != nil
    }
    /// Whether the plan reads prepacked weights in place (`prepacked` was given and fits).
    public let usesPrepackedWeights: Bool
    /// Whether ``run(input:weights:bias:residual:output:activation:context:planeMeans:)`` averages
    /// the output planes as it computes them (the depthwise path on the AVX-512 kernel), rather
    /// than by reading the output again.
    public var poolsPlanesInCache: Bool { algorithm == .depthwise && vectorKernel != nil }
    /// Whether a run spends its time in the AVX-512 packed GEMM kernel (the sgemm, taps and
    /// Winograd paths with packed weights), whose calls read ahead on the thread's ``ReadAhead``
    /// stream.
    public var computesOnPackedKernel: Bool {
        packedWeights != nil && PackedGemm.hasAVX512 && algorithm != .depthwise && algorithm != .direct
    }

    /// This plan reading its packed weights from `destination` (room for
    /// ``packedWeightFloatCount`` floats, 64-byte aligned), where they are copied now; `owner`
    /// keeps that memory alive. The kernels read the same values, so the results are the same
    /// bits. A plan without packed weights is returned as it is.
    public func movingPackedWeights(to destination: UnsafeMutablePointer<Float>, owner: AnyObject) -> Conv2DPlan {
        guard let packed = packedWeights, let values = packed.packedValues.baseAddress else { return self }
        destination.update(from: values, count: packed.packedValues.count)
        var copy = self
        copy.packedWeights = PackedMatrix(
            wrapping: destination, rows: packed.rows, columns: packed.columns, matrixCount: packed.matrixCount,
            owner: owner)
        return copy
    }

    /// Whether a run is bound by reading its packed weights: a pointwise layer with packed weights,
    /// one output position per image and a batch of at most 8 (the squeeze-and-excitation
    /// products on a 1 × 1 map), a few multiply-adds per weight, each read once per run. A
    /// planner places such weights together on huge pages (``movingPackedWeights(to:owner:)``).
    public var streamsWeights: Bool {
        let g = geometry
        return algorithm == .pointwise && packedWeights != nil && g.outputHeight * g.outputWidth == 1 && g.batch <= 8
    }

    /// Whether each im2col tile copies its own columns right before multiplying them (all rows of
    /// a group per tile), instead of the whole column matrix being copied first.
    let tilesFillColumns: Bool
    /// Whether the images of a batch share one product: their columns side by side in one
    /// [reduction × batch · positions] matrix, multiplied once into a scratch matrix that the
    /// epilogue scatters back to each image (``batchesColumns(_:algorithm:)``). The tiles are
    /// then tiles of that one product.
    let batchesColumns: Bool
    /// The weights packed for the AVX-512 kernel (sgemm paths, or the 36 Winograd matrices), when
    /// they were known at plan time and the CPU has AVX-512; otherwise OpenBLAS multiplies.
    var packedWeights: PackedMatrix?
    /// Where a pointwise layer's reduction splits in two (``reductionSplit(_:algorithm:batchesColumns:packed:)``,
    /// when the plan was made with `splitsReduction`), or `nil` when it runs whole.
    let reductionSplit: Int?
    /// The weights packed for OpenBLAS's own kernel (``BLASPackedMatrix``): the sgemm paths of an
    /// ungrouped layer whose weights were known at plan time when the packed kernels do not
    /// take it (no AVX-512), instead of `cblas_sgemm` packing them on every call.
    let blasPackedWeights: BLASPackedMatrix?
    /// The AVX-512 kernel of the ``Algorithm/direct`` path, and of the ``Algorithm/depthwise``
    /// path when the CPU and geometry allow it.
    let vectorKernel: DirectConvKernel?
    /// The input layout of the ``Algorithm/taps`` path.
    let tapPlanes: TapPlanes?
    /// The AVX2 kernel of the ``Algorithm/direct`` path, with its packed weights, on CPUs without
    /// AVX-512.
    let stemKernel: AVX2StemKernel?

    /// Plans `geometry`; `algorithm` overrides the choice (tests use it to force a path that the
    /// geometry allows: ``Algorithm/pointwise`` needs ``Conv2DGeometry/isPointwise``,
    /// ``Algorithm/depthwise`` needs ``Conv2DGeometry/isDepthwise``, ``Algorithm/winograd`` a
    /// 3×3 stride-1 layer and `weights`).
    ///
    /// - Parameter weights: the weights, when they are known now (constant in the model): the
    ///   ``Algorithm/winograd`` path transforms them once, here, and keeps the result (four times
    ///   their size). Without them that path is never chosen.
    /// - Parameter prepacked: the same weights already packed (``Conv2DPlan/prepack(geometry:weights:threadCount:)``
    ///   at convert time): used in place, without a copy, when the chosen algorithm keeps its
    ///   weights in exactly that layout and size (``usesPrepackedWeights``); otherwise ignored.
    /// - Parameter threadCount: threads that may prepare the weights (the result does not
    ///   depend on it).
    /// - Parameter splitsReduction: whether a pointwise layer may split its reduction in two
    ///   (``reductionSplit(_:algorithm:batchesColumns:packed:)``; the graph optimizer marks the
    ///   layers that read a depthwise layer's output). The outputs then differ from the whole
    ///   reduction's within rounding, and are the same bits with any thread count.
    public init(
        geometry: Conv2DGeometry, algorithm: Algorithm? = nil, weights: UnsafePointer<Float>? = nil,
        prepacked: PrepackedWeights? = nil, threadCount: Int = 1, splitsReduction: Bool = false
    ) {
        self.geometry = geometry
        var chosen: Algorithm
        // The stem kernel, when it takes the geometry (its table has 32-bit offsets).
        var fewChannelsKernel: DirectConvKernel? = nil
        if let algorithm {
            chosen = algorithm
        } else {
            (chosen, fewChannelsKernel) = Conv2DPlan.choose(
                geometry, hasWeights: weights != nil, packedKernel: PackedGemm.isAvailable, avx512: PackedGemm.hasAVX512
            )
        }
        precondition(chosen != .pointwise || geometry.isPointwise, "pointwise path on a non-pointwise convolution")
        precondition(chosen != .depthwise || geometry.isDepthwise, "depthwise path on a non-depthwise convolution")
        precondition(
            chosen != .taps || (TapPlanes.supports(geometry) && weights != nil && PackedGemm.isAvailable),
            "tap path on a grouped convolution, without weights or without AVX-512")
        precondition(
            chosen != .winograd || (WinogradConv2D.supports(geometry) && weights != nil),
            "Winograd path on a convolution that is not 3×3 stride 1, or without weights")
        self.algorithm = chosen
        tapPlanes = chosen == .taps ? TapPlanes(geometry: geometry) : nil
        vectorKernel =
            fewChannelsKernel ?? (chosen == .depthwise || chosen == .direct ? DirectConvKernel(geometry) : nil)
        stemKernel =
            chosen == .direct && vectorKernel == nil ? weights.flatMap { AVX2StemKernel(geometry, weights: $0) } : nil
        precondition(
            chosen != .direct || vectorKernel != nil || stemKernel != nil,
            "direct path on a geometry its kernels do not take, or without weights")
        let winogradOnBLAS = chosen == .winograd && weights != nil && Conv2DPlan.winogradRunsOnBLAS(geometry)
        let layout =
            weights == nil || winogradOnBLAS
            ? nil
            : Conv2DPlan.packedLayout(
                chosen, geometry: geometry, packedKernel: PackedGemm.isAvailable, avx512: PackedGemm.hasAVX512)
        var wrapped = false
        if let layout, let prepacked, prepacked.layout == layout, prepacked.format == .panels,
            prepacked.count == Conv2DPlan.packedFloatCount(layout, geometry: geometry)
        {
            wrapped = true
            winogradWeights = nil
            packedWeights = PackedMatrix(
                wrapping: prepacked.values, rows: geometry.outputChannels,
                columns: layout == .gemm ? geometry.reductionLength : geometry.inputChannels,
                matrixCount: Conv2DPlan.packedMatrixCount(layout, geometry: geometry), owner: prepacked.owner)
        } else if let layout, let weights {
            winogradWeights = nil
            packedWeights = Conv2DPlan.pack(weights, layout: layout, geometry: geometry, threadCount: threadCount)
        } else if chosen == .winograd, !winogradOnBLAS, let weights {
            // No packed kernel: OpenBLAS multiplies the transformed weights as they are.
            winogradWeights = WinogradWeights(weights: weights, geometry: geometry, threadCount: threadCount)
            packedWeights = nil
        } else {
            winogradWeights = nil
            packedWeights = nil
        }
        // Weights stored in OpenBLAS's layout (`apus convert --prepack-for avx2`), read in place
        // when the plan runs that kernel on exactly these rows and columns.
        func storedForBLAS(_ layout: PrepackedWeights.Layout, rows: Int, columns: Int) -> BLASPackedMatrix? {
            guard let prepacked, prepacked.format == .openBLAS, prepacked.layout == layout,
                prepacked.count == rows * columns
            else { return nil }
            return BLASPackedMatrix(wrapping: prepacked.values, rows: rows, columns: columns, owner: prepacked.owner)
        }
        if winogradOnBLAS, let weights {
            let rows = WinogradConv2D.positions * geometry.outputChannels
            if let stored = storedForBLAS(.winograd, rows: rows, columns: geometry.inputChannels) {
                blasPackedWeights = stored
                wrapped = true
            } else {
                // Weights prepacked for the AVX-512 kernel are already transformed: copied from.
                var transformed: PackedMatrix? = nil
                if let prepacked, prepacked.layout == .winograd, prepacked.format == .panels,
                    prepacked.count == Conv2DPlan.packedFloatCount(.winograd, geometry: geometry)
                {
                    transformed = PackedMatrix(
                        wrapping: prepacked.values, rows: geometry.outputChannels, columns: geometry.inputChannels,
                        matrixCount: WinogradConv2D.positions, owner: prepacked.owner)
                }
                blasPackedWeights = WinogradWeights.blasPacked(
                    weights: weights, geometry: geometry, transformed: transformed, threadCount: threadCount)
            }
        } else if packedWeights == nil && (chosen == .pointwise || chosen == .im2col) && geometry.groups == 1,
            let weights
        {
            if let stored = storedForBLAS(
                .gemm, rows: geometry.outputChannels, columns: geometry.reductionLength)
            {
                blasPackedWeights = stored
                wrapped = true
            } else {
                blasPackedWeights = BLASPackedMatrix(
                    weights, rows: geometry.outputChannels, columns: geometry.reductionLength,
                    rowStride: geometry.reductionLength, threadCount: threadCount)
            }
        } else {
            blasPackedWeights = nil
        }
        usesPrepackedWeights = wrapped

        batchesColumns = Conv2DPlan.batchesColumns(geometry, algorithm: chosen)
        // Only column matrices that would not stay in L2 are worth copying tile by tile (measured:
        // the 7×7 stem of ResNet, 7.4 MB, gains 0.5 ms; layers under 2 MB lose a little).
        tilesFillColumns =
            chosen == .im2col && packedWeights != nil && !batchesColumns
            && geometry.groups * geometry.reductionLength * geometry.outputHeight * geometry.outputWidth > 1 << 19
        let tiles =
            chosen == .taps
            ? Conv2DPlan.tapTiling(geometry: geometry)
            : tilesFillColumns
                ? Conv2DPlan.columnFillTiling(geometry: geometry)
                : Conv2DPlan.tiling(
                    geometry: geometry,
                    columns: batchesColumns ? geometry.batch * geometry.outputHeight * geometry.outputWidth : nil)
        reductionSplit =
            splitsReduction
            ? Conv2DPlan.reductionSplit(
                geometry, algorithm: chosen, batchesColumns: batchesColumns, packed: packedWeights != nil) : nil
        self.rowTile = tiles.rowTile
        self.rowTileCount = (max(1, geometry.outputChannelsPerGroup) + tiles.rowTile - 1) / tiles.rowTile
        self.columnTile = tiles.columnTile
        self.columnTileCount = tiles.columnTileCount
    }

    /// The algorithm for `g`, and the stem kernel when that is the choice: Winograd for 3×3
    /// stride-1 layers with enough tiles, depthwise, the direct kernel for at most four input
    /// channels, pointwise, the taps path (with the packed kernel), else im2col.
    static func choose(_ g: Conv2DGeometry, hasWeights: Bool, packedKernel: Bool, avx512: Bool = true) -> (
        Algorithm, DirectConvKernel?
    ) {
        if hasWeights && prefersWinograd(g) { return (.winograd, nil) }
        if g.isDepthwise { return (.depthwise, nil) }
        if DirectConvKernel.suitsFewChannels(g) {
            if let kernel = DirectConvKernel(g) { return (.direct, kernel) }
            if hasWeights && AVX2StemKernel.takes(g) { return (.direct, nil) }
        }
        if g.isPointwise { return (.pointwise, nil) }
        // The tap planes are copied by AVX-512 code; without it, by scalar code (mobilenet_v2's stem
        // 0.90 → 1.19 ms on a Zen 3 against im2col).
        if hasWeights && packedKernel && avx512 && TapPlanes.isEnabledByDefault && TapPlanes.supports(g) {
            return (.taps, nil)
        }
        return (.im2col, nil)
    }

    /// The packed form the plan keeps constant weights in for `algorithm`, or `nil` when it reads
    /// them as they are (depthwise and direct kernels, OpenBLAS without the packed kernel, groups
    /// that do not fill whole panels). Without AVX-512 (`avx512` false) the packed kernel is the
    /// AVX2 one, whose 8 × 8 blocks beat OpenBLAS on short reductions (mobilenet_v2's 1 × 1
    /// layers with 16 and 24 input channels 1.33 → 0.79 and 0.56 → 0.39 ms on a Zen 3, while
    /// resnet50 as a whole was no faster; still 10–14 % ahead of OpenBLAS's kernel on weights
    /// packed once) and on the 36 Winograd products, where `cblas_sgemm` packs each position's
    /// weights again on every call for a few tiles' worth of work (resnet18 and resnet50 3–10 %
    /// faster at 1 and 2 threads, Docs/performance.md): there it takes those alone, and the
    /// Winograd products only when ``winogradRunsOnBLAS(_:)`` is false. A short reduction into
    /// at most 16 output channels goes to OpenBLAS's kernel on weights packed once instead, when
    /// it is available (mobilenet_v2's 16 × 12544 × 32 layer 0.51–0.59 → 0.37–0.42 ms).
    static func packedLayout(
        _ algorithm: Algorithm, geometry g: Conv2DGeometry, packedKernel: Bool, avx512: Bool = true,
        blasPacked: @autoclosure () -> Bool = BLASPackedMatrix.isAvailable
    ) -> PrepackedWeights.Layout? {
        guard packedKernel else { return nil }
        if !avx512 && algorithm != .winograd
            && !((algorithm == .pointwise || algorithm == .im2col) && g.reductionLength <= 32
                && !(g.outputChannelsPerGroup <= 16 && blasPacked()))
        {
            return nil
        }
        switch algorithm {
        case .winograd: return .winograd
        case .taps: return .taps
        case .pointwise, .im2col:
            return g.groups == 1 || g.outputChannelsPerGroup % PackedGemm.panelRows == 0 ? .gemm : nil
        case .depthwise, .direct: return nil
        }
    }

    /// Whether the 36 products of a Winograd plan for `g` run on OpenBLAS's kernel with the
    /// transformed weights packed once (``BLASPackedMatrix``): without AVX-512, when that kernel
    /// is available and the output channels fill whole panels of four. It beat the AVX2 packed
    /// kernel there (resnet18's Winograd layers 3–8 % faster at 1 thread, 8–15 % at 2, on a Zen
    /// 3; Docs/performance.md). Such a plan reads Winograd weights stored in OpenBLAS's layout in
    /// place, and copies out of ones prepacked for the AVX-512 kernel.
    public static func winogradRunsOnBLAS(_ g: Conv2DGeometry) -> Bool {
        winogradRunsOnBLAS(g, avx512: PackedGemm.hasAVX512, blasPacked: BLASPackedMatrix.isAvailable)
    }

    /// ``winogradRunsOnBLAS(_:)`` on a CPU with or without AVX-512 and OpenBLAS's kernel.
    static func winogradRunsOnBLAS(_ g: Conv2DGeometry, avx512: Bool, blasPacked: @autoclosure () -> Bool) -> Bool {
        !avx512 && g.outputChannels % 4 == 0 && blasPacked()
    }

    /// Packed matrices of `layout`: one, one per tap, or one per Winograd position.
    static func packedMatrixCount(_ layout: PrepackedWeights.Layout, geometry g: Conv2DGeometry) -> Int {
        switch layout {
        case .gemm: 1
        case .taps: g.kernelHeight * g.kernelWidth
        case .winograd: WinogradConv2D.positions
        }
    }

    /// Floats of `g`'s weights packed in `layout` and the kernel's panels.
    public static func packedFloatCount(_ layout: PrepackedWeights.Layout, geometry g: Conv2DGeometry) -> Int {
        PackedMatrix.floatCount(
            rows: g.outputChannels, columns: layout == .gemm ? g.reductionLength : g.inputChannels,
            matrixCount: packedMatrixCount(layout, geometry: g))
    }

    /// Floats of `g`'s weights packed in `layout` and `format`, or `nil` for a combination no
    /// plan reads (taps in OpenBLAS's layout, or a grouped layer in it).
    public static func packedFloatCount(
        _ layout: PrepackedWeights.Layout, format: PrepackedWeights.Format, geometry g: Conv2DGeometry
    ) -> Int? {
        switch (format, layout) {
        case (.panels, _): packedFloatCount(layout, geometry: g)
        case (.openBLAS, .gemm): g.groups == 1 ? g.outputChannels * g.reductionLength : nil
        case (.openBLAS, .winograd): WinogradConv2D.positions * g.outputChannels * g.inputChannels
        case (.openBLAS, .taps): nil
        }
    }

    /// Packs `weights` (ONNX's `[M][C/g][kH][kW]`) into `layout`.
    static func pack(
        _ weights: UnsafePointer<Float>, layout: PrepackedWeights.Layout, geometry g: Conv2DGeometry, threadCount: Int
    ) -> PackedMatrix {
        switch layout {
        case .winograd:
            // Transformed straight into place: the transformed weights are four times the size
            // of the originals already.
            return WinogradWeights.packed(weights: weights, geometry: g, threadCount: threadCount)
        case .taps:
            return TapPlanes.packedWeights(weights, geometry: g, threadCount: threadCount)
        case .gemm:
            return PackedMatrix(
                weights, rows: g.outputChannels, columns: g.reductionLength, rowStride: g.reductionLength,
                threadCount: threadCount)
        }
    }

    /// Weights packed ahead of time: the layout and format, how many floats, and a function that
    /// writes them (into `count` floats).
    public struct Prepacked {
        public let layout: PrepackedWeights.Layout
        public let format: PrepackedWeights.Format
        public let count: Int
        public let write: (UnsafeMutablePointer<Float>) -> Void
    }

    /// `weights` packed the way a plan for `g` keeps them on a CPU of `target` (whatever this CPU
    /// has: packing is plain data movement, and Winograd's transform the same arithmetic as at
    /// load); `nil` when such a plan reads the weights as they are. `apus convert` stores the
    /// result in the artifact. For ``PrepackedWeights/Target/avx2`` it assumes OpenBLAS's kernel
    /// is available there (``BLASPackedMatrix/isAvailable``); a reader without it packs at load.
    public static func prepack(
        geometry g: Conv2DGeometry, weights: UnsafePointer<Float>, target: PrepackedWeights.Target = .avx512,
        threadCount: Int = 1
    ) -> Prepacked? {
        let avx512 = target == .avx512
        let (algorithm, _) = choose(g, hasWeights: true, packedKernel: true, avx512: avx512)
        nonisolated(unsafe) let weights = weights
        if algorithm == .winograd && winogradRunsOnBLAS(g, avx512: avx512, blasPacked: true) {
            let rows = WinogradConv2D.positions * g.outputChannels
            return Prepacked(layout: .winograd, format: .openBLAS, count: rows * g.inputChannels) { packed in
                let transformed = WinogradWeights(weights: weights, geometry: g, threadCount: threadCount)
                BLASPackedMatrix.write(
                    transformed.values, rows: rows, columns: g.inputChannels, rowStride: g.inputChannels, into: packed)
            }
        }
        if let layout = packedLayout(algorithm, geometry: g, packedKernel: true, avx512: avx512, blasPacked: true) {
            let matrix = pack(weights, layout: layout, geometry: g, threadCount: threadCount)
            let values = matrix.packedValues
            return Prepacked(layout: layout, format: .panels, count: values.count) { packed in
                packed.update(from: values.baseAddress!, count: values.count)
                withExtendedLifetime(matrix) {}
            }
        }
        if !avx512 && (algorithm == .pointwise || algorithm == .im2col) && g.groups == 1 {
            return Prepacked(layout: .gemm, format: .openBLAS, count: g.outputChannels * g.reductionLength) { packed in
                BLASPackedMatrix.write(
                    weights, rows: g.outputChannels, columns: g.reductionLength, rowStride: g.reductionLength,
                    into: packed)
            }
        }
        return nil
    }

    /// Whether Winograd F(4×4, 3×3) beats im2col + sgemm for `g` on this machine's kernels: it
    /// does 4× fewer multiply-adds but 36 sgemm calls on [K × C] · [C × tiles], which are slow
    /// when there are few tiles (see Docs/performance.md for the measurements behind the bound).
    static func prefersWinograd(_ g: Conv2DGeometry) -> Bool {
        guard WinogradConv2D.supports(g) else { return false }
        let minimumTiles = winogradMinimumTiles
        return minimumTiles >= 0 && WinogradConv2D.tiles(g).count >= minimumTiles
    }

    /// At least 16 tiles: maps of 14 × 14 and up (Docs/performance.md). `APUS_WINOGRAD_MIN_TILES`
    /// overrides it for experiments (a negative value turns Winograd off).
    static let winogradMinimumTiles: Int = {
        if let value = EnvironmentSwitch.integer("APUS_WINOGRAD_MIN_TILES") { return value }
        return 16
    }()

    /// The tiles of the im2col path on the packed kernel: every row of a group, and column tiles
    /// whose slice of the column matrix (reduction × columns) is about 512 KB, so a tile's copy is
    /// still in L2 when the kernel reads it. Depends only on the geometry.
    static func columnFillTiling(geometry g: Conv2DGeometry) -> (rowTile: Int, columnTile: Int, columnTileCount: Int) {
        let columns = max(1, g.outputHeight * g.outputWidth)
        let rows = max(1, g.outputChannelsPerGroup)
        let target = max(64, (131_072 / max(1, g.reductionLength)) / 32 * 32)
        let columnTile = min(columns, target)
        return (rows, columnTile, (columns + columnTile - 1) / columnTile)
    }

    /// The tiles of the ``Algorithm/taps`` path: column tiles small enough that one tap's operand
    /// stays in L2 while the taps add up, and, when that leaves fewer than four tiles, row tiles
    /// too, so that two threads share the work. Depends only on the geometry; the sums do not depend on it at all.
    static func tapTiling(geometry g: Conv2DGeometry) -> (rowTile: Int, columnTile: Int, columnTileCount: Int) {
        let columns = max(1, g.outputHeight * g.outputWidth)
        let rows = max(1, g.outputChannels)
        let budget = tapTileBytes / MemoryLayout<Float>.stride
        let fit = max(48, budget / max(1, g.inputChannels) / 48 * 48)
        // Four or more tiles are the threads' only split: then of about equal width, a multiple
        // of 4 (784 columns as 4 × 196 rather than 3 × 240 + 64, which two threads share as
        // 480 against 304); fewer keep the kernel's 48-wide strips and add row tiles below.
        let count = (columns + fit - 1) / fit
        let columnTile =
            count >= 4 ? min(columns, ((columns + count - 1) / count + 3) / 4 * 4) : min(columns, fit)
        let columnTileCount = (columns + columnTile - 1) / columnTile
        var rowTile = rows
        if columnTileCount < 4 && rows >= 64 {
            let parts = min(rows / 32, (4 + columnTileCount - 1) / columnTileCount)
            rowTile = min(rows, ((rows + parts - 1) / parts + 7) / 8 * 8)
        }
        return (rowTile, columnTile, columnTileCount)
    }

    /// The L2 budget of one tap tile (output tile plus one tap's operand): 256 KB;
    /// `APUS_TAP_TILE_BYTES` overrides it for experiments.
    static let tapTileBytes: Int = {
        if let value = EnvironmentSwitch.integer("APUS_TAP_TILE_BYTES"), value > 0 { return value }
        return 256 * 1024
    }()

    /// Whether a plan for `g` and `algorithm` multiplies all images of the batch at once
    /// (``batchesColumns``): an ungrouped sgemm-path layer of a batch whose maps have at most
    /// ``batchedColumnsMaxPositions`` positions each. There one image's product is narrow (49
    /// columns on a 7 × 7 map) and the weights, packed again by OpenBLAS on every call, are large
    /// against it; side by side the batch's columns make one wide product that packs them once.
    /// Not when the batch's matrix and product would pass 64 MB (a batch of hundreds): the
    /// workspace would be a multiple of the whole model.
    static func batchesColumns(_ g: Conv2DGeometry, algorithm: Algorithm) -> Bool {
        let positions = g.outputHeight * g.outputWidth
        let (floats, overflow) = (g.reductionLength + g.outputChannels).multipliedReportingOverflow(
            by: g.batch * positions)
        return g.batch > 1 && g.groups == 1 && (algorithm == .im2col || algorithm == .pointwise)
            && positions <= batchedColumnsMaxPositions && !overflow && floats <= 1 << 24
    }

    /// Maps of up to 14 × 14 positions (Docs/performance.md); `APUS_BATCHED_COLUMNS_MAX`
    /// overrides it for experiments (0 turns the batched product off).
    static let batchedColumnsMaxPositions: Int = {
        if let value = EnvironmentSwitch.integer("APUS_BATCHED_COLUMNS_MAX") { return value }
        return 196
    }()

    /// The sgemm tiles of one image and group (or, with `columns`, of a product that many
    /// columns wide: the whole batch's, ``batchesColumns``).
    ///
    /// OpenBLAS packs the weights (A) again for every call, and its kernels are far slower on
    /// narrow column blocks, so tiles are as large as possible: one call per image and group
    /// unless the work is large enough to be worth two or four parts (for two threads). The tile
    /// sizes depend only on the geometry, never on the thread count.
    static func tiling(geometry g: Conv2DGeometry, columns wide: Int? = nil) -> (
        rowTile: Int, columnTile: Int, columnTileCount: Int
    ) {
        let columns = max(1, wide ?? g.outputHeight * g.outputWidth)
        let rows = max(1, g.outputChannelsPerGroup)
        let work = rows * columns * max(1, g.reductionLength)
        // Under ~1 M multiply-adds a split costs more than it gains.
        let parts = work < 1 << 20 ? 1 : (g.groups >= 4 ? 1 : (columns >= 2048 && work >= 1 << 24 ? 4 : 2))
        var columnParts = 1
        var rowParts = 1
        if parts > 1 {
            if columns >= 256 * parts {
                columnParts = parts
            } else if rows >= 32 * parts {
                rowParts = parts
            } else if columns >= 512 {
                columnParts = 2
            } else if rows >= 64 {
                rowParts = 2
            }
        }
        // Tiles rounded to 16 (one AVX-512 vector of floats).
        var columnTile = columns
        if columnParts > 1 { columnTile = min(columns, ((columns + columnParts - 1) / columnParts + 15) / 16 * 16) }
        var rowTile = rows
        if rowParts > 1 { rowTile = min(rows, ((rows + rowParts - 1) / rowParts + 15) / 16 * 16) }
        return (rowTile, columnTile, (columns + columnTile - 1) / columnTile)
    }

    /// Where the reduction of a pointwise layer splits in two halves that are multiplied apart and
    /// then added (`c = A₀·B₀ + A₁·B₁`, then bias, residual and activation), or `nil`: layers
    /// with packed weights on the AVX-512 kernel, maps of at most ``reductionSplitMaxPositions``
    /// positions (14 × 14), at least 128 input channels and at least twice as many inputs as
    /// outputs (the projections of inverted residual blocks). The split sits at half the input
    /// channels rounded to 16, where the depthwise layer before a projection splits its channels
    /// between two threads, so that each thread multiplies the channels it has just written (the
    /// whole reduction made each thread read every channel, half of them from the other core's
    /// cache: Docs/performance.md, "Zen 4, fifteenth session"). It depends on the geometry alone,
    /// never on the thread count, so the outputs stay the same bits with any number of threads.
    /// Whether a layer reads a depthwise layer is the graph's to say (``init(geometry:algorithm:weights:prepacked:threadCount:splitsReduction:)``).
    static func reductionSplit(_ g: Conv2DGeometry, algorithm: Algorithm, batchesColumns: Bool, packed: Bool) -> Int? {
        let k = g.inputChannels
        guard algorithm == .pointwise, packed, PackedGemm.hasAVX512, g.groups == 1, !batchesColumns,
            g.outputHeight * g.outputWidth <= reductionSplitMaxPositions, k >= 128, k >= 2 * g.outputChannels
        else { return nil }
        return (k / 2 + 8) / 16 * 16
    }

    /// 196 positions (14 × 14 maps); `APUS_REDUCTION_SPLIT_POSITIONS` overrides it for experiments
    /// (0 turns the split off).
    static let reductionSplitMaxPositions: Int = {
        if let value = EnvironmentSwitch.integer("APUS_REDUCTION_SPLIT_POSITIONS") { return value }
        return 196
    }()

    /// Scratch bytes for one concurrently running depthwise task.
    var slotByteCount: Int {
        let g = geometry
        switch algorithm {
        case .pointwise, .im2col, .taps, .winograd, .direct: return 0
        case .depthwise:
            // The AVX-512 kernel reads the input in place.
            if vectorKernel != nil { return 0 }
            let layout = DepthwiseLayout(geometry: g)
            return layout.planeElementCount * MemoryLayout<Float>.stride
        }
    }

    /// Bytes of the column matrix of one image (all groups) for the im2col path.
    var columnMatrixByteCount: Int {
        guard algorithm == .im2col else { return 0 }
        let g = geometry
        return g.groups * g.reductionLength * g.outputHeight * g.outputWidth * MemoryLayout<Float>.stride
    }

    /// Float offsets in the workspace of the batched product (``batchesColumns``): its right-hand
    /// matrix (reduction × batch · positions; the input's channels side by side for a pointwise
    /// layer) and the product before the epilogue (output channels × batch · positions).
    var batchedColumnsLayout: (product: Int, floatCount: Int) {
        let g = geometry
        let width = g.batch * g.outputHeight * g.outputWidth
        let product = (g.reductionLength * width + 15) / 16 * 16
        return (product, product + (g.outputChannels * width + 15) / 16 * 16)
    }

    /// The workspace ``run(input:weights:bias:residual:output:activation:context:)`` needs when
    /// it may use `threadCount` threads: the column matrix of one image (im2col), or of the
    /// batch and the batch's product (``batchesColumns``), or one scratch plane per concurrently
    /// running task (depthwise).
    public func workspaceByteCount(threadCount: Int) -> Int {
        if batchesColumns { return batchedColumnsLayout.floatCount * MemoryLayout<Float>.stride }
        if reductionSplit != nil { return (splitReductionByteCount + 63) / 64 * 64 }
        if algorithm == .im2col { return (columnMatrixByteCount + 63) / 64 * 64 }
        if let tapPlanes { return (tapPlanes.floatCount * MemoryLayout<Float>.stride + 63) / 64 * 64 }
        if algorithm == .winograd { return winogradLayout.byteCount }
        let slot = slotByteCount
        if slot == 0 { return 0 }
        // Round each slot to 64 bytes so that every slot starts aligned.
        return (slot + 63) / 64 * 64 * max(1, min(threadCount, taskCount))
    }

    /// The number of independent tasks of one run (of one image for the sgemm paths, unless
    /// ``batchesColumns``).
    var taskCount: Int {
        switch algorithm {
        case .depthwise: geometry.batch * geometry.outputChannels
        case .pointwise, .im2col, .taps: geometry.groups * rowTileCount * columnTileCount
        case .winograd: WinogradConv2D.positions
        case .direct:
            stemKernel?.taskCount(batch: geometry.batch) ?? geometry.batch * DirectConvKernel.passCount(geometry)
        }
    }

    /// Where the Winograd path keeps its matrices in the workspace (float offsets).
    struct WinogradLayout {
        /// Input-transform and output-transform tasks (fixed by the channel counts).
        let inputTasks: Int
        let outputTasks: Int
        /// Offsets of V (36 × C × tiles), M (36 × K × tiles) and the per-task scratch.
        let v: Int
        let m: Int
        /// Floats from one tile position's matrix to the next in V and in M
        /// (``WinogradConv2D/positionStride(channels:tileStride:)``).
        let vPositionStride: Int
        let mPositionStride: Int
        let scratch: Int
        let floatCount: Int
        var byteCount: Int { floatCount * MemoryLayout<Float>.stride }
    }

    var winogradLayout: WinogradLayout {
        let g = geometry
        let tileStride = WinogradConv2D.tiles(g).stride
        let inputTasks = min(g.inputChannels, 16)
        let outputTasks = min(g.outputChannels, 16)
        let vStride = WinogradConv2D.positionStride(channels: g.inputChannels, tileStride: tileStride)
        let mStride = WinogradConv2D.positionStride(channels: g.outputChannels, tileStride: tileStride)
        let v = 0
        let m = v + WinogradConv2D.positions * vStride
        let scratch = m + WinogradConv2D.positions * mStride
        let total = scratch + max(inputTasks, outputTasks) * WinogradConv2D.scratchCount(g)
        return WinogradLayout(
            inputTasks: inputTasks, outputTasks: outputTasks, v: v, m: m, vPositionStride: vStride,
            mPositionStride: mStride, scratch: scratch, floatCount: total)
    }

    /// Computes `output = activation(conv(input, weights) + bias + residual)`.
    ///
    /// - Parameters:
    ///   - input: N × C × H × W.
    ///   - weights: M × (C / groups) × kH × kW (row-major, as ONNX stores them).
    ///   - bias: M values or `nil`.
    ///   - residual: a tensor of the output's shape or `nil`.
    ///   - output: N × M × outH × outW.
    ///   - context: threads, and a workspace of at least ``workspaceByteCount(threadCount:)`` for
    ///     one thread.
    ///   - planeMeans: where to write the mean of every output plane (N × M values, the global
    ///     average pooling of the output, ``Pool2D/average(_:count:)``'s bits), or `nil`. The
    ///     depthwise path on the AVX-512 kernel takes each task's planes right after computing
    ///     them, while they are in cache; the others read the output again at the end.
    public func run(
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        context: ComputeContext, planeMeans: UnsafeMutablePointer<Float>? = nil
    ) {
        let plane = geometry.outputHeight * geometry.outputWidth
        if let planeMeans, !poolsPlanesInCache {
            defer {
                Pool2D.global(
                    max: false, planes: geometry.batch * geometry.outputChannels, planeSize: plane,
                    input: output, output: planeMeans, context: context)
            }
            run(
                input: input, weights: weights, bias: bias, residual: residual, output: output, activation: activation,
                context: context)
            return
        }
        let tasks = taskCount
        if tasks == 0 || plane == 0 { return }
        switch algorithm {
        case .depthwise:
            runDepthwise(
                input: input, weights: weights, bias: bias, residual: residual, output: output, activation: activation,
                context: context, planeMeans: planeMeans)
        case .direct:
            runDirect(
                input: input, weights: weights, bias: bias, residual: residual, output: output, activation: activation,
                context: context)
        case .winograd:
            runWinograd(
                input: input, bias: bias, residual: residual, output: output, activation: activation, context: context)
        case .taps:
            runTaps(
                input: input, bias: bias, residual: residual, output: output, activation: activation, context: context)
        case .pointwise, .im2col:
            if batchesColumns {
                runBatchedColumns(
                    input: input, weights: weights, bias: bias, residual: residual, output: output,
                    activation: activation, context: context)
                return
            }
            let g = geometry
            var columnMatrix: UnsafeMutablePointer<Float>? = nil
            if algorithm == .im2col {
                let needed = columnMatrixByteCount
                precondition(
                    context.workspace != nil && context.workspaceByteCount >= needed,
                    "convolution needs \(needed) workspace bytes, has \(context.workspaceByteCount)")
                columnMatrix = context.workspace?.assumingMemoryBound(to: Float.self)
            }
            let inputImageCount = g.inputChannels * g.inputHeight * g.inputWidth
            let outputImageCount = g.outputChannels * g.outputHeight * g.outputWidth
            if let split = reductionSplit, let packed = packedWeights {
                runSplitReduction(
                    split: split, packed: packed, input: input, scaling: nil, bias: bias, residual: residual,
                    output: output, activation: activation, context: context)
                return
            }
            guard let columnMatrix else {
                // Pointwise: no shared column matrix, so every image's tiles go into one parallel
                // region (one region for the whole batch).
                context.parallelFor(
                    g.batch * tasks,
                    GemmTiles(
                        plan: self, tasksPerImage: tasks, input: input, inputImageCount: inputImageCount,
                        columnMatrix: nil, weights: weights, bias: bias, residual: residual, output: output,
                        outputImageCount: outputImageCount, activation: activation))
                return
            }
            /// The column matrix of one image, split by input channel, and with fewer than eight
            /// channels (a stem's three) by columns too, so that the threads get equal shares.
            struct ColumnFill: ParallelTasks {
                let geometry: Conv2DGeometry
                let input: UnsafePointer<Float>
                let channelChunks: Int
                let columnChunks: Int
                let matrix: UnsafeMutablePointer<Float>

                var count: Int { channelChunks * columnChunks }

                init(geometry: Conv2DGeometry, input: UnsafePointer<Float>, matrix: UnsafeMutablePointer<Float>) {
                    self.geometry = geometry
                    self.input = input
                    self.matrix = matrix
                    channelChunks = min(geometry.inputChannels, 8)
                    columnChunks = channelChunks < 8 ? min(8, geometry.outputHeight * geometry.outputWidth) : 1
                }

                func run(_ chunk: Int) {
                    let channels = geometry.inputChannels
                    let rowsPerChannel = geometry.kernelHeight * geometry.kernelWidth
                    let columns = geometry.outputHeight * geometry.outputWidth
                    let channelChunk = chunk / columnChunks
                    let columnChunk = chunk % columnChunks
                    let first = channelChunk * channels / channelChunks
                    let last = (channelChunk + 1) * channels / channelChunks
                    let firstColumn = columnChunk * columns / columnChunks
                    let lastColumn = (columnChunk + 1) * columns / columnChunks
                    Im2col.fill(
                        geometry: geometry, input: input, channels: first..<last, columns: firstColumn..<lastColumn,
                        into: matrix + first * rowsPerChannel * columns, rowStride: columns)
                }
            }
            // im2col: the column matrix in the workspace holds one image at a time.
            nonisolated(unsafe) let matrix = columnMatrix
            for image in 0..<g.batch {
                let inputImage = input + image * inputImageCount
                let outputImage = output + image * outputImageCount
                let residualImage = residual.map { $0 + image * outputImageCount }
                if !tilesFillColumns {
                    // The whole column matrix first (pure copies, split as ColumnFill says), so
                    // that each sgemm sees every column of its tile at once.
                    let fill = ColumnFill(geometry: g, input: inputImage, matrix: matrix)
                    context.parallelFor(fill.count, fill)
                }
                context.parallelFor(
                    tasks,
                    GemmTiles(
                        plan: self, tasksPerImage: tasks, input: inputImage, inputImageCount: inputImageCount,
                        columnMatrix: UnsafePointer(matrix), weights: weights, bias: bias, residual: residualImage,
                        output: outputImage, outputImageCount: outputImageCount, activation: activation))
            }
        }
    }

    /// The sgemm paths with the batch's columns side by side (``batchesColumns``): the right-hand
    /// matrix of every image (im2col, or the input's rows for a pointwise layer) copied into one
    /// matrix, split by image and channel chunk; one product over all columns, tile by tile, each
    /// tile then copied to its images and finished by the epilogue there.
    private func runBatchedColumns(
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        context: ComputeContext
    ) {
        let layout = batchedColumnsLayout
        let needed = layout.floatCount * MemoryLayout<Float>.stride
        precondition(
            context.workspace != nil && context.workspaceByteCount >= needed,
            "convolution needs \(needed) workspace bytes, has \(context.workspaceByteCount)")
        guard let workspace = context.workspace?.assumingMemoryBound(to: Float.self) else { return }

        /// The right-hand matrix, by image and chunk of input channels.
        struct Fill: ParallelTasks {
            let geometry: Conv2DGeometry
            let pointwise: Bool
            let input: UnsafePointer<Float>
            let matrix: UnsafeMutablePointer<Float>
            var chunks: Int { min(geometry.inputChannels, 8) }

            func run(_ task: Int) {
                let g = geometry
                let image = task / chunks
                let chunk = task % chunks
                let positions = g.outputHeight * g.outputWidth
                let width = g.batch * positions
                let first = chunk * g.inputChannels / chunks
                let last = (chunk + 1) * g.inputChannels / chunks
                let plane = g.inputHeight * g.inputWidth
                let imageInput = input + image * g.inputChannels * plane
                if pointwise {
                    for channel in first..<last {
                        (matrix + channel * width + image * positions).update(
                            from: imageInput + channel * plane, count: positions)
                    }
                } else {
                    Im2col.fill(
                        geometry: g, input: imageInput, channels: first..<last, columns: 0..<positions,
                        into: matrix + first * g.kernelHeight * g.kernelWidth * width + image * positions,
                        rowStride: width)
                }
            }
        }
        /// One tile of the product, then its columns copied to their images with the epilogue.
        struct Tiles: ParallelTasks {
            let plan: Conv2DPlan
            let matrix: UnsafePointer<Float>
            let product: UnsafeMutablePointer<Float>
            let operands: ConvOperands

            func run(_ task: Int) {
                let g = plan.geometry
                let positions = g.outputHeight * g.outputWidth
                let width = g.batch * positions
                let firstColumn = task % plan.columnTileCount * plan.columnTile
                let firstRow = task / plan.columnTileCount * plan.rowTile
                let columnCount = min(plan.columnTile, width - firstColumn)
                let rowCount = min(plan.rowTile, g.outputChannels - firstRow)
                if columnCount <= 0 || rowCount <= 0 { return }
                let reduction = g.reductionLength
                let tile = product + firstRow * width + firstColumn
                let o = operands
                if let packed = plan.packedWeights {
                    PackedGemm.multiply(
                        packed, firstRow: firstRow, rowCount: rowCount, n: columnCount, b: matrix + firstColumn,
                        ldb: width, c: tile, ldc: width)
                } else if let blasPacked = plan.blasPackedWeights {
                    blasPacked.multiply(
                        firstRow: firstRow, rowCount: rowCount, n: columnCount, b: matrix + firstColumn, ldb: width,
                        c: tile, ldc: width)
                } else {
                    BLAS.sgemm(
                        transposeA: false, transposeB: false, m: rowCount, n: columnCount, k: reduction, alpha: 1,
                        a: o.weights + firstRow * reduction, lda: reduction, b: matrix + firstColumn, ldb: width,
                        beta: 0, c: tile, ldc: width)
                }
                var column = firstColumn
                while column < firstColumn + columnCount {
                    let image = column / positions
                    let start = column - image * positions
                    let count = min(positions - start, firstColumn + columnCount - column)
                    let offset = (image * g.outputChannels + firstRow) * positions + start
                    for row in 0..<rowCount {
                        (o.output + offset + row * positions).update(
                            from: product + (firstRow + row) * width + column, count: count)
                    }
                    Epilogue.apply(
                        to: o.output + offset, rowCount: rowCount, columnCount: count, rowStride: positions,
                        bias: o.bias.map { $0 + firstRow }, residual: o.residual.map { $0 + offset },
                        residualRowStride: positions, activation: o.activation)
                    column += count
                }
            }
        }
        let g = geometry
        let matrix = workspace
        let fill = Fill(geometry: g, pointwise: algorithm == .pointwise, input: input, matrix: matrix)
        context.parallelFor(g.batch * fill.chunks, fill)
        context.parallelFor(
            taskCount,
            Tiles(
                plan: self, matrix: UnsafePointer(matrix), product: workspace + layout.product,
                operands: ConvOperands(
                    input: input, weights: weights, bias: bias, residual: residual, output: output,
                    activation: activation)))
    }

    /// Bytes of the split reduction's second half's product, one image at a time (the workspace
    /// of ``runSplitReduction(split:packed:input:scaling:bias:residual:output:activation:context:)``).
    var splitReductionByteCount: Int {
        geometry.outputChannels * geometry.outputHeight * geometry.outputWidth * MemoryLayout<Float>.stride
    }

    /// Tasks per half of the split reduction: the rows of each half's product are cut into as many
    /// parts as half the threads.
    func splitReductionParts(threadCount: Int) -> Int {
        let panels = (geometry.outputChannels + PackedGemm.panelRows - 1) / PackedGemm.panelRows
        return max(1, min(panels, (threadCount + 1) / 2))
    }

    /// A squeeze-and-excitation scale inside the split reduction (``runScaledInput(input:scale:scaleStride:bias:residual:output:activation:context:)``):
    /// each task scales what its half reads before multiplying it, so that the scaling, like the
    /// product, reads only the input channels of its own half.
    struct SplitScaling {
        /// `C` scales of the image being multiplied.
        let scale: UnsafePointer<Float>
        /// Where the scaled operands go: with ``scalesWeights``, a whole packed copy of the weights
        /// (each task writes its panels' columns of its half); otherwise one buffer of
        /// `bufferFloats` per task for its half's scaled input channels.
        let scratch: UnsafeMutablePointer<Float>
        let scalesWeights: Bool
        let bufferFloats: Int
    }

    /// The pointwise path with the reduction split in two (``reductionSplit``), per image: the
    /// first half's product into `output` and the second's into the workspace, each half's rows
    /// cut into ``splitReductionParts(threadCount:)`` tasks (the first half's tasks first, so that
    /// with two threads the caller multiplies the first half); then the two added and the epilogue
    /// applied, rows split between the threads. With `scaling`, the input's channels are scaled
    /// first, through the weights or through a copy of the half's input channels.
    private func runSplitReduction(
        split: Int, packed: PackedMatrix, input: UnsafePointer<Float>,
        scaling: (scale: UnsafePointer<Float>, stride: Int)?,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: FusedActivation, context: ComputeContext
    ) {
        let g = geometry
        let n = g.outputHeight * g.outputWidth
        let rows = g.outputChannels
        let needed =
            scaling == nil ? splitReductionByteCount : scaledInputWorkspaceByteCount(threadCount: context.threadCount)
        precondition(
            context.workspace != nil && context.workspaceByteCount >= needed,
            "convolution needs \(needed) workspace bytes, has \(context.workspaceByteCount)")
        guard let second = context.workspace?.assumingMemoryBound(to: Float.self) else { return }
        // The scaled operands follow the second half's product, 64-byte aligned.
        let scratch = second + (splitReductionByteCount + 63) / 64 * 64 / MemoryLayout<Float>.stride
        let panels = (rows + PackedGemm.panelRows - 1) / PackedGemm.panelRows
        let parts = splitReductionParts(threadCount: context.threadCount)

        /// Row part `task % parts` of half `task / parts`.
        struct Halves: ParallelTasks {
            let packed: PackedMatrix
            let split: Int
            let parts: Int
            let panels: Int
            let n: Int
            let input: UnsafePointer<Float>
            let scaling: SplitScaling?
            let output: UnsafeMutablePointer<Float>
            let second: UnsafeMutablePointer<Float>

            func run(_ task: Int) {
                let half = task / parts
                let part = task % parts
                let firstPanel = part * panels / parts
                let lastPanel = (part + 1) * panels / parts
                let firstRow = firstPanel * PackedGemm.panelRows
                let lastRow = min(packed.rows, lastPanel * PackedGemm.panelRows)
                if lastRow <= firstRow { return }
                let range = half == 0 ? 0..<split : split..<packed.columns
                var b = input + range.lowerBound * n
                var values: UnsafePointer<Float>? = nil
                if let scaling, scaling.scalesWeights {
                    apus_gemm_packed_scale_columns(
                        packed.values, packed.rows, packed.columns, scaling.scale, firstPanel, lastPanel - firstPanel,
                        range.lowerBound, range.upperBound, scaling.scratch)
                    values = UnsafePointer(scaling.scratch)
                } else if let scaling {
                    let buffer = scaling.scratch + task * scaling.bufferFloats
                    for channel in range {
                        let s = scaling.scale[channel]
                        let from = input + channel * n
                        let to = buffer + (channel - range.lowerBound) * n
                        for i in 0..<n { to[i] = from[i] * s }
                    }
                    b = UnsafePointer(buffer)
                }
                PackedGemm.multiply(
                    packed, firstRow: firstRow, rowCount: lastRow - firstRow, n: n, b: b, ldb: n,
                    c: (half == 0 ? output : second) + firstRow * n, ldc: n, values: values, reduction: range)
            }
        }
        /// Rows of the sum, then the epilogue.
        struct Sum: ParallelTasks {
            let rows: Int
            let n: Int
            let output: UnsafeMutablePointer<Float>
            let second: UnsafePointer<Float>
            let bias: UnsafePointer<Float>?
            let residual: UnsafePointer<Float>?
            let activation: FusedActivation
            let tasks: Int

            func run(_ task: Int) {
                let first = task * rows / tasks
                let last = (task + 1) * rows / tasks
                if last <= first { return }
                let block = output + first * n
                Epilogue.apply(
                    to: block, rowCount: last - first, columnCount: n, rowStride: n, bias: nil,
                    residual: second + first * n, residualRowStride: n, activation: .none)
                Epilogue.apply(
                    to: block, rowCount: last - first, columnCount: n, rowStride: n, bias: bias.map { $0 + first },
                    residual: residual.map { $0 + first * n }, residualRowStride: n, activation: activation)
            }
        }
        let inputImageCount = g.inputChannels * g.inputHeight * g.inputWidth
        let outputImageCount = rows * n
        let sumTasks = max(1, min(rows, context.threadCount))
        for image in 0..<g.batch {
            let imageOutput = output + image * outputImageCount
            let imageScaling = scaling.map {
                SplitScaling(
                    scale: $0.scale + image * $0.stride, scratch: scratch, scalesWeights: scalesWeightsCheaper,
                    bufferFloats: splitInputBufferFloats)
            }
            context.parallelFor(
                2 * parts,
                Halves(
                    packed: packed, split: split, parts: parts, panels: panels, n: n,
                    input: input + image * inputImageCount, scaling: imageScaling, output: imageOutput,
                    second: second))
            context.parallelFor(
                sumTasks,
                Sum(
                    rows: rows, n: n, output: imageOutput, second: UnsafePointer(second), bias: bias,
                    residual: residual.map { $0 + image * outputImageCount }, activation: activation,
                    tasks: sumTasks))
        }
    }

    /// The Winograd path, per image: input transform (split by input channel), 36 sgemm calls
    /// (one per tile position), output transform with the epilogue (split by output channel).
    private func runWinograd(
        input: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: FusedActivation, context: ComputeContext
    ) {
        let g = geometry
        let layout = winogradLayout
        precondition(
            context.workspace != nil && context.workspaceByteCount >= layout.byteCount,
            "convolution needs \(layout.byteCount) workspace bytes, has \(context.workspaceByteCount)")
        guard let base = context.workspace?.assumingMemoryBound(to: Float.self),
            packedWeights != nil || winogradWeights != nil || blasPackedWeights != nil
        else { return }
        let workspace = base
        let weights = winogradWeights.map { UnsafePointer($0.values) }
        let inputImageCount = g.inputChannels * g.inputHeight * g.inputWidth
        let outputImageCount = g.outputChannels * g.outputHeight * g.outputWidth

        /// The input transform of one image, split by input channel.
        struct InputTransform: ParallelTasks {
            let geometry: Conv2DGeometry
            let layout: WinogradLayout
            let input: UnsafePointer<Float>
            let workspace: UnsafeMutablePointer<Float>

            func run(_ task: Int) {
                let first = task * geometry.inputChannels / layout.inputTasks
                let last = (task + 1) * geometry.inputChannels / layout.inputTasks
                WinogradConv2D.transformInput(
                    geometry: geometry, input: input, channels: first..<last, v: workspace + layout.v,
                    scratch: workspace + layout.scratch + task * WinogradConv2D.scratchCount(geometry))
            }
        }
        /// One matrix product per tile position.
        struct PositionProducts: ParallelTasks {
            let geometry: Conv2DGeometry
            let layout: WinogradLayout
            let packed: PackedMatrix?
            let blasPacked: BLASPackedMatrix?
            let weights: UnsafePointer<Float>?
            let workspace: UnsafeMutablePointer<Float>

            func run(_ position: Int) {
                let (_, _, tileCount, tileStride) = WinogradConv2D.tiles(geometry)
                let channels = geometry.inputChannels
                let outChannels = geometry.outputChannels
                if let blasPacked {
                    blasPacked.multiply(
                        firstRow: position * outChannels, rowCount: outChannels, n: tileCount,
                        b: workspace + layout.v + position * layout.vPositionStride, ldb: tileStride,
                        c: workspace + layout.m + position * layout.mPositionStride, ldc: tileStride)
                    return
                }
                if let packed {
                    PackedGemm.multiply(
                        packed, matrix: position, firstRow: 0, rowCount: outChannels, n: tileCount,
                        b: workspace + layout.v + position * layout.vPositionStride, ldb: tileStride,
                        c: workspace + layout.m + position * layout.mPositionStride, ldc: tileStride)
                    return
                }
                guard let weights else { return }
                BLAS.sgemm(
                    transposeA: false, transposeB: false, m: outChannels, n: tileCount, k: channels, alpha: 1,
                    a: weights + position * outChannels * channels, lda: channels,
                    b: workspace + layout.v + position * layout.vPositionStride, ldb: tileStride, beta: 0,
                    c: workspace + layout.m + position * layout.mPositionStride, ldc: tileStride)
            }
        }
        /// The output transform and epilogue of one image, split by output channel.
        struct OutputTransform: ParallelTasks {
            let geometry: Conv2DGeometry
            let layout: WinogradLayout
            let bias: UnsafePointer<Float>?
            let residual: UnsafePointer<Float>?
            let output: UnsafeMutablePointer<Float>
            let activation: FusedActivation
            let workspace: UnsafeMutablePointer<Float>

            func run(_ task: Int) {
                let plane = geometry.outputHeight * geometry.outputWidth
                let first = task * geometry.outputChannels / layout.outputTasks
                let last = (task + 1) * geometry.outputChannels / layout.outputTasks
                WinogradConv2D.transformOutput(
                    geometry: geometry, m: workspace + layout.m, channels: first..<last, bias: bias, output: output,
                    scratch: workspace + layout.scratch + task * WinogradConv2D.scratchCount(geometry))
                Epilogue.apply(
                    to: output + first * plane, rowCount: last - first, columnCount: plane, rowStride: plane,
                    bias: nil, residual: residual.map { $0 + first * plane }, residualRowStride: plane,
                    activation: activation)
            }
        }
        for image in 0..<g.batch {
            let inputImage = input + image * inputImageCount
            let outputImage = output + image * outputImageCount
            let residualImage = residual.map { $0 + image * outputImageCount }
            context.parallelFor(
                layout.inputTasks, InputTransform(geometry: g, layout: layout, input: inputImage, workspace: workspace))
            context.parallelFor(
                WinogradConv2D.positions,
                PositionProducts(
                    geometry: g, layout: layout, packed: packedWeights, blasPacked: blasPackedWeights, weights: weights,
                    workspace: workspace))
            context.parallelFor(
                layout.outputTasks,
                OutputTransform(
                    geometry: g, layout: layout, bias: bias, residual: residualImage, output: outputImage,
                    activation: activation, workspace: workspace))
        }
    }

    /// The direct path: one (image, block of eight output channels) per task.
    private func runDirect(
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        context: ComputeContext
    ) {
        if let stemKernel {
            struct Rows: ParallelTasks {
                let kernel: AVX2StemKernel
                let operands: ConvOperands

                func run(_ task: Int) { kernel.run(task: task, operands: operands) }
            }
            context.parallelFor(
                stemKernel.taskCount(batch: geometry.batch),
                Rows(
                    kernel: stemKernel,
                    operands: ConvOperands(
                        input: input, weights: weights, bias: bias, residual: residual, output: output,
                        activation: activation)))
            return
        }
        guard let vectorKernel else { return }
        let g = geometry
        let passes = DirectConvKernel.passCount(g)
        struct Passes: ParallelTasks {
            let kernel: DirectConvKernel
            let g: Conv2DGeometry
            let passes: Int
            let operands: ConvOperands

            func run(_ task: Int) {
                let image = task / passes
                let first = task % passes * DirectConvKernel.channelsPerPass
                kernel.runDirectPass(
                    image: image, first: first, geometry: g, operands: operands,
                    into: operands.output + (image * g.outputChannels + first) * g.outputHeight * g.outputWidth)
            }
        }
        context.parallelFor(
            g.batch * passes,
            Passes(
                kernel: vectorKernel, g: g, passes: passes,
                operands: ConvOperands(
                    input: input, weights: weights, bias: bias, residual: residual, output: output,
                    activation: activation)))
    }

    /// The depthwise path: one (image, channel) per task, each with its own padded plane.
    private func runDepthwise(
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        context: ComputeContext, planeMeans: UnsafeMutablePointer<Float>? = nil
    ) {
        let tasks = taskCount
        let operands = ConvOperands(
            input: input, weights: weights, bias: bias, residual: residual, output: output, activation: activation)
        if let vectorKernel {
            // Reads the input in place: no scratch plane. Blocks of planes per task fixed by the
            // plane size alone (each plane is computed whole, whatever thread runs it); on maps up
            // to 14 × 14 a multiple of 16, the planes the kernel takes together (its channel kernel).
            var perTask = max(1, 4096 / max(1, geometry.outputHeight * geometry.outputWidth))
            if geometry.outputHeight <= 14 && geometry.outputWidth <= 14 { perTask = (perTask + 15) / 16 * 16 }
            struct Planes: ParallelRanges {
                let kernel: DirectConvKernel
                let channels: Int
                let operands: ConvOperands
                let planeSize: Int
                let means: UnsafeMutablePointer<Float>?

                func run(_ planes: Range<Int>) {
                    let o = operands
                    kernel.runDepthwise(
                        channels: channels, tasks: planes, input: o.input, weights: o.weights, bias: o.bias,
                        residual: o.residual, output: o.output, activation: o.activation)
                    // The planes' means while they are still in cache.
                    if let means {
                        for plane in planes {
                            means[plane] = Pool2D.average(o.output + plane * planeSize, count: planeSize)
                        }
                    }
                }
            }
            context.parallelFor(
                tasks, blockSize: perTask,
                Planes(
                    kernel: vectorKernel, channels: geometry.outputChannels, operands: operands,
                    planeSize: geometry.outputHeight * geometry.outputWidth, means: planeMeans))
            return
        }
        struct Workers: ParallelSlotRanges {
            let plan: Conv2DPlan
            let operands: ConvOperands
            let channelKernel: DepthwiseConv2D.AVX2Channels?
            let directKernel: DepthwiseConv2D.AVX2Direct?

            func run(_ range: Range<Int>, scratch: UnsafeMutableRawPointer) {
                let plane = scratch.assumingMemoryBound(to: Float.self)
                // The direct kernel reads the input where it is; only the others fill the plane.
                if directKernel == nil {
                    DepthwiseConv2D.clearPlane(layout: DepthwiseLayout(geometry: plan.geometry), scratch: plane)
                }
                let o = operands
                func alone(_ task: Int) {
                    plan.runDepthwise(
                        task: task, input: o.input, weights: o.weights, bias: o.bias, residual: o.residual,
                        output: o.output, activation: o.activation, scratch: plane, direct: directKernel)
                }
                guard let channelKernel else {
                    for task in range { alone(task) }
                    return
                }
                channelKernel.run(
                    planes: range, channels: plan.geometry.outputChannels, input: o.input, weights: o.weights,
                    bias: o.bias, residual: o.residual, output: o.output, single: alone)
            }
        }
        // Both kernels are chosen once per run, not per plane.
        let channelKernel =
            DepthwiseConv2D.usesAVX2Channels
            ? DepthwiseConv2D.AVX2Channels(geometry: geometry, activation: activation) : nil
        let directKernel =
            DepthwiseConv2D.usesAVX2Direct
            ? DepthwiseConv2D.AVX2Direct(geometry: geometry, activation: activation) : nil
        context.parallelFor(
            tasks, slotByteCount: (slotByteCount + 63) / 64 * 64,
            Workers(plan: self, operands: operands, channelKernel: channelKernel, directKernel: directKernel))
    }

    /// One (group, row tile, column tile) of one image for the sgemm-based paths.
    private func runGemmTile(
        task: Int, input inputImage: UnsafePointer<Float>, columnMatrix: UnsafePointer<Float>?,
        weights: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: FusedActivation, packedValues: UnsafePointer<Float>? = nil
    ) {
        let g = geometry
        var rest = task
        let columnTileIndex = rest % columnTileCount
        rest /= columnTileCount
        let rowTileIndex = rest % rowTileCount
        let group = rest / rowTileCount

        let columns = g.outputHeight * g.outputWidth
        let firstColumn = columnTileIndex * columnTile
        let columnCount = min(columnTile, columns - firstColumn)
        let mPerGroup = g.outputChannelsPerGroup
        let firstRow = rowTileIndex * rowTile
        let rowCount = min(rowTile, mPerGroup - firstRow)
        if columnCount <= 0 || rowCount <= 0 { return }
        let outputChannel = group * mPerGroup + firstRow
        let reduction = g.reductionLength
        let outputOffset = outputChannel * columns + firstColumn
        let tileOutput = output + outputOffset

        let b: UnsafePointer<Float>
        if let columnMatrix {
            if tilesFillColumns {
                // This tile's columns of this group's rows (no other tile shares them).
                let channels = group * g.inputChannelsPerGroup..<(group + 1) * g.inputChannelsPerGroup
                Im2col.fill(
                    geometry: g, input: inputImage, channels: channels,
                    columns: firstColumn..<firstColumn + columnCount,
                    into: UnsafeMutablePointer(mutating: columnMatrix) + group * reduction * columns, rowStride: columns
                )
            }
            b = columnMatrix + group * reduction * columns + firstColumn
        } else {
            b = inputImage + group * g.inputChannelsPerGroup * g.inputHeight * g.inputWidth + firstColumn
        }
        if let packedWeights {
            // The epilogue runs inside the kernel, on each block while it is in registers.
            PackedGemm.multiply(
                packedWeights, firstRow: outputChannel, rowCount: rowCount, n: columnCount, b: b, ldb: columns,
                c: tileOutput, ldc: columns, bias: bias.map { $0 + outputChannel },
                residual: residual.map { $0 + outputOffset }, residualStride: columns, activation: activation,
                values: packedValues)
            return
        }
        if let blasPackedWeights {
            // Block by block of the kernel's columns, each finished by the epilogue while it is
            // still in L2 (the same kernel calls as one call over the tile, so the same bits;
            // resnet50's 1 × 1 layers on 56² and 28² maps 2–4 % faster than one epilogue pass
            // over the tile).
            let block = Int(APUS_BLAS_COLUMN_BLOCK)
            var first = 0
            while first < columnCount {
                let count = min(block, columnCount - first)
                blasPackedWeights.multiply(
                    firstRow: outputChannel, rowCount: rowCount, n: count, b: b + first, ldb: columns,
                    c: tileOutput + first, ldc: columns)
                Epilogue.apply(
                    to: tileOutput + first, rowCount: rowCount, columnCount: count, rowStride: columns,
                    bias: bias.map { $0 + outputChannel }, residual: residual.map { $0 + outputOffset + first },
                    residualRowStride: columns, activation: activation)
                first += count
            }
            return
        }
        guard let weights else { preconditionFailure("the OpenBLAS path needs the plain weights") }
        BLAS.sgemm(
            transposeA: false, transposeB: false, m: rowCount, n: columnCount, k: reduction, alpha: 1,
            a: weights + outputChannel * reduction, lda: reduction, b: b, ldb: columns, beta: 0, c: tileOutput,
            ldc: columns)
        Epilogue.apply(
            to: tileOutput, rowCount: rowCount, columnCount: columnCount, rowStride: columns,
            bias: bias.map { $0 + outputChannel }, residual: residual.map { $0 + outputOffset },
            residualRowStride: columns, activation: activation)
    }

    /// One (image, channel) of the depthwise path: through `direct` when given, else through
    /// the padded plane in `scratch`.
    private func runDepthwise(
        task: Int, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        scratch: UnsafeMutablePointer<Float>, direct: DepthwiseConv2D.AVX2Direct?
    ) {
        let g = geometry
        let channel = task % g.outputChannels
        let plane = g.outputHeight * g.outputWidth
        let channelInput = input + task * g.inputHeight * g.inputWidth
        let channelWeights = weights + channel * g.kernelHeight * g.kernelWidth
        let channelBias = bias?[channel] ?? 0
        let channelResidual = residual.map { $0 + task * plane }
        let channelOutput = output + task * plane
        if let direct {
            direct.run(
                input: channelInput, weights: channelWeights, bias: channelBias, residual: channelResidual,
                output: channelOutput)
        } else {
            DepthwiseConv2D.runChannel(
                layout: DepthwiseLayout(geometry: g), input: channelInput, weights: channelWeights, bias: channelBias,
                residual: channelResidual, output: channelOutput, activation: activation, scratch: scratch)
        }
    }
}

/// What every task of one convolution run reads and writes: the run's arguments, shared by the
/// paths' task structs.
struct ConvOperands {
    let input: UnsafePointer<Float>
    let weights: UnsafePointer<Float>
    let bias: UnsafePointer<Float>?
    let residual: UnsafePointer<Float>?
    let output: UnsafeMutablePointer<Float>
    let activation: FusedActivation
}

/// Copies the receptive fields of output positions into a [reduction × columns] matrix.
enum Im2col {
    /// Fills `buffer[k][j]` for `k` over (input channel in `channels`, ky, kx) and `j` in
    /// `columns` (output positions, row-major over outH × outW); `buffer` is row 0, column 0 of the
    /// first channel's rows, `rowStride` floats apart; `input` is the image's first channel.
    static func fill(
        geometry g: Conv2DGeometry, input: UnsafePointer<Float>, channels: Range<Int>, columns: Range<Int>,
        into buffer: UnsafeMutablePointer<Float>, rowStride: Int
    ) {
        let outW = g.outputWidth
        let inH = g.inputHeight
        let inW = g.inputWidth
        let s = g.strideWidth
        var row = buffer
        for channel in channels {
            let plane = input + channel * inH * inW
            for ky in 0..<g.kernelHeight {
                for kx in 0..<g.kernelWidth {
                    let xOffset = kx * g.dilationWidth - g.padLeft
                    // Output columns whose input column lies inside the image: lo ..< hi.
                    let lo = min(outW, xOffset >= 0 ? 0 : (-xOffset + s - 1) / s)
                    let hi = inW - 1 - xOffset < 0 ? 0 : min(outW, (inW - 1 - xOffset) / s + 1)
                    var column = columns.lowerBound
                    while column < columns.upperBound {
                        let oy = column / outW
                        let start = column - oy * outW
                        let end = min(outW, start + columns.upperBound - column)
                        // dest[ox] is column oy·outW + ox.
                        let dest = row + (column - start)
                        column += end - start
                        let iy = oy * g.strideHeight - g.padTop + ky * g.dilationHeight
                        if iy < 0 || iy >= inH || lo >= hi {
                            (dest + start).update(repeating: 0, count: end - start)
                            continue
                        }
                        let first = min(max(start, lo), end)
                        let last = max(min(end, hi), first)
                        if first > start { (dest + start).update(repeating: 0, count: first - start) }
                        let source = plane + iy * inW + xOffset
                        if s == 1 {
                            (dest + first).update(from: source + first, count: last - first)
                        } else {
                            var ox = first
                            if s == 2 {
                                // Sixteen inputs → eight outputs while the whole vector is in the row.
                                while ox + 8 <= last && xOffset + 2 * ox + 16 <= inW {
                                    let v = UnsafeRawPointer(source + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
                                    UnsafeMutableRawPointer(dest + ox).storeBytes(
                                        of: v.evenHalf, as: SIMD8<Float>.self)
                                    ox += 8
                                }
                            }
                            while ox < last {
                                dest[ox] = source[ox * s]
                                ox += 1
                            }
                        }
                        if last < end { (dest + last).update(repeating: 0, count: end - last) }
                    }
                    row += rowStride
                }
            }
        }
    }
}

extension Conv2DPlan {
    /// Gemm tiles of consecutive images, `tasksPerImage` per image.
    struct GemmTiles: ParallelTasks {
        let plan: Conv2DPlan
        let tasksPerImage: Int
        let input: UnsafePointer<Float>
        let inputImageCount: Int
        let columnMatrix: UnsafePointer<Float>?
        /// `nil` only with packed weights (the OpenBLAS path reads them).
        let weights: UnsafePointer<Float>?
        let bias: UnsafePointer<Float>?
        let residual: UnsafePointer<Float>?
        let output: UnsafeMutablePointer<Float>
        let outputImageCount: Int
        let activation: FusedActivation
        var packedValues: UnsafePointer<Float>? = nil

        func run(_ item: Int) {
            let image = item / tasksPerImage
            plan.runGemmTile(
                task: item % tasksPerImage, input: input + image * inputImageCount, columnMatrix: columnMatrix,
                weights: weights, bias: bias, residual: residual.map { $0 + image * outputImageCount },
                output: output + image * outputImageCount, activation: activation, packedValues: packedValues)
        }
    }

    /// Whether ``runScaledInput(input:scale:scaleStride:bias:residual:output:activation:context:)``
    /// takes this plan: a pointwise layer on the packed kernel, its images multiplied one by one.
    public var scalesInputThroughWeights: Bool { algorithm == .pointwise && packedWeights != nil && !batchesColumns }

    /// Floats of the weights' packed form (what one scaled copy of them needs).
    public var packedWeightFloatCount: Int { packedWeights.map { $0.packedValues.count } ?? 0 }

    /// Whether the plan splits its reduction in two (``reductionSplit(_:algorithm:batchesColumns:packed:)``).
    public var splitsReduction: Bool { reductionSplit != nil }

    /// Whether the packed weights are no larger than one image of the input, so that scaling them
    /// (one multiply per weight) costs no more than scaling the input (one per input value): the
    /// planner's condition for joining a channel scale into the layer without a split, and the
    /// split's choice of what to scale.
    public var scalesWeightsCheaper: Bool {
        packedWeightFloatCount <= geometry.inputChannels * geometry.inputHeight * geometry.inputWidth
    }

    /// Floats of one task's scaled input channels in a split reduction that scales the input: the
    /// larger half's channels, rounded to 16.
    var splitInputBufferFloats: Int {
        guard let split = reductionSplit else { return 0 }
        let channels = max(split, geometry.inputChannels - split)
        return (channels * geometry.outputHeight * geometry.outputWidth + 15) / 16 * 16
    }

    /// Workspace bytes of ``runScaledInput(input:scale:scaleStride:bias:residual:output:activation:context:)``
    /// with `threadCount` threads: one scaled copy of the packed weights; with a split reduction,
    /// the second half's product, then that copy or each task's scaled input channels.
    public func scaledInputWorkspaceByteCount(threadCount: Int) -> Int {
        let floats = MemoryLayout<Float>.stride
        let copy = (packedWeightFloatCount * floats + 63) / 64 * 64
        guard reductionSplit != nil else { return copy }
        let buffers = 2 * splitReductionParts(threadCount: threadCount) * splitInputBufferFloats * floats
        return (splitReductionByteCount + 63) / 64 * 64 + (scalesWeightsCheaper ? copy : buffers)
    }

    /// Computes `output = activation(conv(input · diag(scale), weights) + bias + residual)` for a
    /// pointwise layer whose input channels are first scaled (the multiply closing a
    /// squeeze-and-excitation block), without the scaled input: each image's scales multiply the
    /// columns of a copy of the packed weights instead (`W · diag(s)`; one rounding per weight
    /// instead of one per input value), which is far less work when the map is larger than the
    /// weights.
    ///
    /// A plan that splits its reduction (``splitsReduction``) scales inside each half instead:
    /// each task scales its half's columns of the weights (its panels only), or its half's input
    /// channels when the weights are the larger (``scalesWeightsCheaper``), so neither the scaling
    /// nor the product reads the other half's channels.
    ///
    /// - Parameters:
    ///   - scale: `C` scales per image, `scaleStride` floats apart (0: one set for every image).
    ///   - context: a workspace of at least ``scaledInputWorkspaceByteCount(threadCount:)`` for
    ///     its thread count.
    public func runScaledInput(
        input: UnsafePointer<Float>, scale: UnsafePointer<Float>, scaleStride: Int, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: FusedActivation,
        context: ComputeContext
    ) {
        precondition(scalesInputThroughWeights, "scaled input on a plan that is not pointwise on the packed kernel")
        let needed = scaledInputWorkspaceByteCount(threadCount: context.threadCount)
        precondition(
            context.workspace != nil && context.workspaceByteCount >= needed,
            "scaled convolution needs \(needed) workspace bytes, has \(context.workspaceByteCount)")
        guard let packed = packedWeights, let scaled = context.workspace?.assumingMemoryBound(to: Float.self) else {
            return
        }
        if let split = reductionSplit {
            if geometry.outputHeight * geometry.outputWidth == 0 { return }
            runSplitReduction(
                split: split, packed: packed, input: input, scaling: (scale, scaleStride), bias: bias,
                residual: residual, output: output, activation: activation, context: context)
            return
        }
        let g = geometry
        let tasks = taskCount
        if tasks == 0 || g.outputHeight * g.outputWidth == 0 { return }
        let inputImageCount = g.inputChannels * g.inputHeight * g.inputWidth
        let outputImageCount = g.outputChannels * g.outputHeight * g.outputWidth
        // With one set of scales, one scaled copy serves every image in one parallel region.
        let imagesPerCopy = scaleStride == 0 ? g.batch : 1
        /// Panels of the scaled copy, split between threads when there are many.
        struct ScaleWeights: ParallelTasks {
            let packed: UnsafePointer<Float>
            let rows: Int
            let columns: Int
            let scale: UnsafePointer<Float>
            let panelsPerTask: Int
            let panels: Int
            let out: UnsafeMutablePointer<Float>

            func run(_ task: Int) {
                let first = task * panelsPerTask
                apus_gemm_packed_scale_columns(
                    packed, rows, columns, scale, first, min(panelsPerTask, panels - first), 0, columns, out)
            }
        }
        let panels = (g.outputChannels + PackedGemm.panelRows - 1) / PackedGemm.panelRows
        // About 16 K floats per task: below that a hand-off costs more than the multiplies.
        let panelsPerTask = max(1, (1 << 14) / max(1, PackedGemm.panelRows * g.reductionLength))
        for first in stride(from: 0, to: g.batch, by: imagesPerCopy) {
            context.parallelFor(
                (panels + panelsPerTask - 1) / panelsPerTask,
                ScaleWeights(
                    packed: packed.values, rows: g.outputChannels, columns: g.reductionLength,
                    scale: scale + first * scaleStride, panelsPerTask: panelsPerTask, panels: panels, out: scaled))
            context.parallelFor(
                imagesPerCopy * tasks,
                GemmTiles(
                    plan: self, tasksPerImage: tasks, input: input + first * inputImageCount,
                    inputImageCount: inputImageCount, columnMatrix: nil, weights: nil, bias: bias,
                    residual: residual.map { $0 + first * outputImageCount },
                    output: output + first * outputImageCount, outputImageCount: outputImageCount,
                    activation: activation, packedValues: UnsafePointer(scaled)))
        }
    }
}
