#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The environment variables that switch a kernel off or override a tuning constant, for
/// comparing kernels and tiles in benchmarks (Docs/engine.md lists them). Each caller reads its
/// variable once, into a `static let`, so a switch holds for the whole process.
public enum EnvironmentSwitch {
    /// Whether the variable `name` is set to `0`, which turns the kernel or join it names off.
    public static func isOff(_ name: String) -> Bool {
        value(name) == "0"
    }

    /// The variable `name` as an integer, or nil when it is unset or not an integer.
    public static func integer(_ name: String) -> Int? {
        value(name).flatMap { Int($0) }
    }

    /// The variable `name`'s text, or nil when it is unset.
    public static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
