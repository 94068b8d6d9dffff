import CApusKernels
import CApusSupport
import CBLAS
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// OpenBLAS, loaded at run time so that its fast kernels are used on every CPU.
///
/// Debian's OpenBLAS 0.3.21 does not recognize every current CPU and then falls back to slow SSE3
/// kernels. OpenBLAS reads `OPENBLAS_CORETYPE` once, while it is being loaded, so Apus does not
/// link it at build time: before loading it, Apus picks the core type from the CPU's features
/// (unless the variable is already set, in which case the user's choice wins), and it keeps
/// OpenBLAS single-threaded because Apus splits work over its own threads.
public enum BLAS {
    /// How the OpenBLAS core type was chosen.
    public enum CoreTypeSource: String, Sendable {
        /// `OPENBLAS_CORETYPE` was set before Apus loaded OpenBLAS.
        case environment
        /// Apus chose it from the CPU's features.
        case detected
        /// OpenBLAS chose by itself (no known-good core for this CPU, or it was already loaded).
        case openBLAS
    }

    /// Facts about the loaded library, for `apus inspect` and `apus bench`.
    public struct Info: Sendable {
        /// Path or name the library was loaded from.
        public var library: String
        /// The core OpenBLAS reports it runs (`openblas_get_corename`).
        public var coreName: String
        /// OpenBLAS's build configuration string.
        public var config: String
        /// How the core type was chosen.
        public var coreTypeSource: CoreTypeSource
        /// The value of `OPENBLAS_CORETYPE` in force when the library was loaded, if any.
        public var requestedCoreType: String?
    }

    /// Why OpenBLAS could not be loaded.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String {
            "cannot load OpenBLAS: \(reason) (install libopenblas0, e.g. apt install libopenblas-dev)"
        }
    }

    struct Functions: @unchecked Sendable {
        var sgemm: apus_cblas_sgemm_fn
        var sgemv: apus_cblas_sgemv_fn
        var setThreads: apus_openblas_set_num_threads_fn?
        var info: Info
        /// The loaded core's sgemm kernel and copy routines, when it exports them and they are
        /// of a core whose panel layout ``BLASPackedMatrix`` knows.
        var packedKernels: apus_blas_kernels?
    }

    static let loaded: Result<Functions, LoadError> = {
        let pending = loadState.withLock { state -> BackgroundLoad? in
            state.started = true
            return state.pending
        }
        let request: LoadRequest
        let result: Result<Functions, LoadError>
        if let pending {
            pending.done.wait()
            (request, result) = (pending.request, pending.result!)
        } else {
            request = prepareLoad()
            result = open(request)
        }
        // Leave the environment as the user had it: child processes decide for themselves.
        if request.source == .detected { unsetenv("OPENBLAS_CORETYPE") }
        return result
    }()

    /// Loads OpenBLAS if it is not loaded yet and returns what was loaded.
    ///
    /// - Throws: ``LoadError`` when no OpenBLAS library can be found.
    @discardableResult
    public static func load() throws(LoadError) -> Info {
        try loaded.get().info
    }

    /// Starts loading OpenBLAS on another thread and returns at once; ``load()`` (which every
    /// model load calls) then waits for it instead of loading. Mapping and relocating the library
    /// and OpenBLAS's own start-up take 3–6 ms, which this overlaps with the caller's work, such
    /// as reading an artifact (`Model(contentsOf:)` calls it first). The environment
    /// (`OPENBLAS_CORETYPE`, `OPENBLAS_NUM_THREADS`) is set on the calling thread before the
    /// other thread starts and restored by the thread that finishes ``load()``. Does nothing once
    /// loading has started.
    public static func loadInBackground() {
        loadState.withLock { state in
            guard !state.started else { return }
            state.started = true
            let pending = BackgroundLoad(request: prepareLoad())
            state.pending = pending
            DispatchQueue.global().async {
                pending.result = open(pending.request)
                pending.done.signal()
            }
        }
    }

    /// Whether loading has started, and the background load if one was started.
    private struct LoadState: @unchecked Sendable {
        var started = false
        var pending: BackgroundLoad?
    }
    private static let loadState = Mutex(LoadState())

    /// A load running on another thread; `result` is written before `done` is signalled.
    private final class BackgroundLoad: @unchecked Sendable {
        let request: LoadRequest
        var result: Result<Functions, LoadError>?
        let done = DispatchSemaphore(value: 0)
        init(request: LoadRequest) { self.request = request }
    }

    /// What to load and the core type asked for, decided (and put in the environment) before
    /// loading.
    private struct LoadRequest: Sendable {
        var source: CoreTypeSource
        var requested: String?
    }

    /// The OpenBLAS core type Apus would request for this CPU, or `nil` to let OpenBLAS decide.
    ///
    /// AVX-512 (F, CD, BW, DQ, VL, with OS support) selects `SKYLAKEX`; AVX2 with FMA selects
    /// `HASWELL`. Both kernel sets only use those instructions, so they are correct on any CPU that
    /// has them, Intel or AMD.
    public static func preferredCoreType(features: UInt32 = apus_cpu_features()) -> String? {
        let avx512: UInt32 = UInt32(
            APUS_CPU_AVX512F | APUS_CPU_AVX512CD | APUS_CPU_AVX512BW | APUS_CPU_AVX512DQ | APUS_CPU_AVX512VL
                | APUS_CPU_OS_AVX512 | APUS_CPU_OS_AVX)
        if features & avx512 == avx512 { return "SKYLAKEX" }
        let avx2: UInt32 = UInt32(APUS_CPU_AVX2 | APUS_CPU_FMA | APUS_CPU_OS_AVX)
        if features & avx2 == avx2 { return "HASWELL" }
        return nil
    }

    #if canImport(Darwin)
        private static let libraryNames = ["libopenblas.dylib", "libopenblas.0.dylib"]
    #else
        private static let libraryNames = ["libopenblas.so.0", "libopenblas.so"]
    #endif

    /// Chooses the core type and sets OpenBLAS's environment, which it reads while it is loaded.
    private static func prepareLoad() -> LoadRequest {
        var alreadyLoaded = false
        for name in libraryNames where dlopen(name, RTLD_LAZY | RTLD_NOLOAD) != nil {
            alreadyLoaded = true
        }
        var request = LoadRequest(source: .openBLAS)
        if let value = getenv("OPENBLAS_CORETYPE"), !alreadyLoaded {
            request = LoadRequest(source: .environment, requested: String(cString: value))
        } else if !alreadyLoaded, let core = preferredCoreType() {
            setenv("OPENBLAS_CORETYPE", core, 1)
            request = LoadRequest(source: .detected, requested: core)
        }
        // Apus runs OpenBLAS single-threaded; this stops it from starting a thread pool at all.
        if !alreadyLoaded { setenv("OPENBLAS_NUM_THREADS", "1", 0) }
        return request
    }

    /// Loads the library and looks up its functions. Lazy binding: the handful of functions
    /// Apus calls are bound on first use instead of all of OpenBLAS's imports at load.
    private static func open(_ request: LoadRequest) -> Result<Functions, LoadError> {
        var handle: UnsafeMutableRawPointer?
        var loadedName = ""
        for name in libraryNames {
            if let h = dlopen(name, RTLD_LAZY | RTLD_LOCAL) {
                handle = h
                loadedName = name
                break
            }
        }
        guard let handle else {
            let message = dlerror().map { String(cString: $0) } ?? "not found"
            return .failure(LoadError(reason: message))
        }
        guard let sgemmSymbol = dlsym(handle, "cblas_sgemm") else {
            return .failure(LoadError(reason: "\(loadedName) has no cblas_sgemm"))
        }
        let sgemm = unsafeBitCast(sgemmSymbol, to: apus_cblas_sgemm_fn.self)
        guard let sgemvSymbol = dlsym(handle, "cblas_sgemv") else {
            return .failure(LoadError(reason: "\(loadedName) has no cblas_sgemv"))
        }
        let sgemv = unsafeBitCast(sgemvSymbol, to: apus_cblas_sgemv_fn.self)
        let setThreads = dlsym(handle, "openblas_set_num_threads").map {
            unsafeBitCast($0, to: apus_openblas_set_num_threads_fn.self)
        }
        let coreName = dlsym(handle, "openblas_get_corename").flatMap {
            unsafeBitCast($0, to: apus_openblas_get_corename_fn.self)().map { String(cString: $0) }
        }
        let config = dlsym(handle, "openblas_get_config").flatMap {
            unsafeBitCast($0, to: apus_openblas_get_config_fn.self)().map { String(cString: $0) }
        }
        setThreads?(1)
        let info = Info(
            library: loadedName, coreName: coreName ?? "unknown", config: config ?? "unknown",
            coreTypeSource: request.source, requestedCoreType: request.requested)
        return .success(
            Functions(
                sgemm: sgemm, sgemv: sgemv, setThreads: setThreads, info: info,
                packedKernels: packedKernels(handle: handle, coreName: coreName)))
    }

    /// The cores whose single-precision kernel takes the weights in panels of four (OpenBLAS's
    /// `SGEMM_UNROLL_N`), the layout ``BLASPackedMatrix`` slices rows in: Haswell's 16 × 4
    /// kernel, which OpenBLAS also runs for Zen, and SkylakeX's (where Apus's own AVX-512 kernel
    /// takes these layers; the self-check still runs there).
    static let packedKernelCores: Set<String> = ["HASWELL", "ZEN", "SKYLAKEX"]

    /// OpenBLAS's `sgemm_kernel_<CORE>`, `sgemm_oncopy_<CORE>` and `sgemm_itcopy_<CORE>` for the
    /// running core (DYNAMIC_ARCH builds export them), or `nil`.
    private static func packedKernels(handle: UnsafeMutableRawPointer, coreName: String?) -> apus_blas_kernels? {
        guard let core = coreName?.uppercased(), packedKernelCores.contains(core),
            let kernel = dlsym(handle, "sgemm_kernel_\(core)"),
            let weights = dlsym(handle, "sgemm_oncopy_\(core)"),
            let columns = dlsym(handle, "sgemm_itcopy_\(core)")
        else { return nil }
        return apus_blas_kernels(
            kernel: unsafeBitCast(kernel, to: apus_blas_kernel_fn.self),
            pack_weights: unsafeBitCast(weights, to: apus_blas_copy_fn.self),
            pack_columns: unsafeBitCast(columns, to: apus_blas_copy_fn.self))
    }

    /// Single-precision matrix multiply, row-major: `C = alpha * op(A) * op(B) + beta * C` with
    /// `op(A)` of size m×k and `op(B)` k×n.
    ///
    /// - Precondition: OpenBLAS has been loaded (``load()`` succeeded); the planner checks this
    ///   before any kernel runs.
    @inline(__always)
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard case .success(let functions) = loaded else { preconditionFailure("OpenBLAS is not loaded") }
        if m == 0 || n == 0 { return }
        functions.sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Single-precision matrix-vector product, row-major: `y = alpha · op(A) · x + beta · y` with
    /// `A` of size m×n (`op(A)` n×m when `transpose`), `x` and `y` with strides `incx`, `incy`.
    /// OpenBLAS's sgemm packs its operands even for a single row, so a one-row product (a
    /// classifier head at batch 1) is much faster this way.
    ///
    /// - Precondition: OpenBLAS has been loaded (``load()`` succeeded).
    @inline(__always)
    public static func sgemv(
        transpose: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>,
        incx: Int, beta: Float, y: UnsafeMutablePointer<Float>, incy: Int
    ) {
        guard case .success(let functions) = loaded else { preconditionFailure("OpenBLAS is not loaded") }
        if m == 0 || n == 0 { return }
        functions.sgemv(
            CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda), x,
            Int32(incx), beta, y, Int32(incy))
    }
}
