import Testing

@testable import ApusOps

#if canImport(Glibc)
    import Glibc
#endif

/// The environment switches read what the variable says: `0` is off, anything else (or nothing)
/// is not; integers parse or are ignored.
@Suite(.serialized) struct EnvironmentSwitchTests {
    static let name = "APUS_ENVIRONMENT_SWITCH_TEST"

    @Test func readsOffAndIntegers() {
        defer { unsetenv(Self.name) }
        unsetenv(Self.name)
        #expect(!EnvironmentSwitch.isOff(Self.name))
        #expect(EnvironmentSwitch.integer(Self.name) == nil)
        #expect(EnvironmentSwitch.value(Self.name) == nil)
        setenv(Self.name, "0", 1)
        #expect(EnvironmentSwitch.isOff(Self.name))
        #expect(EnvironmentSwitch.integer(Self.name) == 0)
        setenv(Self.name, "1", 1)
        #expect(!EnvironmentSwitch.isOff(Self.name))
        setenv(Self.name, "avx2", 1)
        #expect(!EnvironmentSwitch.isOff(Self.name))
        #expect(EnvironmentSwitch.integer(Self.name) == nil)
        #expect(EnvironmentSwitch.value(Self.name) == "avx2")
        setenv(Self.name, "-4096", 1)
        #expect(EnvironmentSwitch.integer(Self.name) == -4096)
        setenv(Self.name, "", 1)
        #expect(!EnvironmentSwitch.isOff(Self.name))
        #expect(EnvironmentSwitch.integer(Self.name) == nil)
    }
}
