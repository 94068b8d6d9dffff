import Apus
import ApusOps
import CApusSupport
import Foundation
import Testing

/// CPU availability (affinity, cgroup quotas) and the OpenBLAS core-type choice, checked in real
/// child processes of the `apus` binary built by scripts/test.sh.
@Suite(.serialized) struct RuntimeEnvironmentTests {
    static let root = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let apus = root.appending(path: ".build/release/apus")

    /// Runs a command and returns its standard output.
    func run(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> String {
        let process = Process()
        process.executableURL = URL(filePath: executable)
        process.arguments = arguments
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    func fixtureModel() -> String? {
        guard Fixtures.modelNames.contains("squeezenet1_1"), let directory = Fixtures.modelsDirectory else {
            return nil
        }
        return directory.appending(path: "squeezenet1_1/model.onnx").path
    }

    @Test func parsesCgroupQuotaFiles() {
        #expect(CPUAvailability.parseCPUMax("max 100000\n") == nil)
        #expect(CPUAvailability.parseCPUMax("150000 100000\n") == 2)
        #expect(CPUAvailability.parseCPUMax("100000 100000") == 1)
        #expect(CPUAvailability.parseCPUMax("50000 100000") == 1)
        #expect(CPUAvailability.parseCFS(quota: "-1\n", period: "100000\n") == nil)
        #expect(CPUAvailability.parseCFS(quota: "300000\n", period: "100000\n") == 3)
        let files = [
            "/sys/fs/cgroup/cpu,cpuacct/pod/cpu.cfs_quota_us": "200000",
            "/sys/fs/cgroup/cpu,cpuacct/pod/cpu.cfs_period_us": "100000",
            "/sys/fs/cgroup/pod2/cpu.max": "100000 100000",
        ]
        #expect(CPUAvailability.cgroupQuotaCPUs(procCgroup: "4:cpu,cpuacct:/pod\n", readFile: { files[$0] }) == 2)
        #expect(CPUAvailability.cgroupQuotaCPUs(procCgroup: "0::/pod2\n", readFile: { files[$0] }) == 1)
        #expect(CPUAvailability.cgroupQuotaCPUs(procCgroup: "0::/other\n", readFile: { files[$0] }) == nil)
    }

    @Test func prefersAVX512KernelsOnlyWithOSSupport() {
        let avx512 = UInt32(
            APUS_CPU_AVX512F | APUS_CPU_AVX512CD | APUS_CPU_AVX512BW | APUS_CPU_AVX512DQ | APUS_CPU_AVX512VL
                | APUS_CPU_OS_AVX512 | APUS_CPU_OS_AVX | APUS_CPU_AVX2 | APUS_CPU_FMA)
        #expect(BLAS.preferredCoreType(features: avx512) == "SKYLAKEX")
        #expect(BLAS.preferredCoreType(features: avx512 & ~UInt32(APUS_CPU_OS_AVX512)) == "HASWELL")
        #expect(BLAS.preferredCoreType(features: UInt32(APUS_CPU_AVX2 | APUS_CPU_FMA | APUS_CPU_OS_AVX)) == "HASWELL")
        #expect(BLAS.preferredCoreType(features: UInt32(APUS_CPU_SSE3)) == nil)
    }

    @Test func choosesTheCoreTypeUnlessTheUserDid() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.apus.path), let model = fixtureModel() else {
            if Fixtures.required { Issue.record("apus binary or fixture missing") }
            return
        }
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "OPENBLAS_CORETYPE")
        let detected = try run(Self.apus.path, ["inspect", model], environment: environment)
        if let expected = BLAS.preferredCoreType() {
            #expect(detected.contains("(detected, requested \(expected))"), "\(detected)")
            // OpenBLAS reports the core it runs, e.g. "SkylakeX" for SKYLAKEX.
            #expect(detected.lowercased().contains("core \(expected.lowercased())"), "\(detected)")
        }
        environment["OPENBLAS_CORETYPE"] = "Haswell"
        let explicit = try run(Self.apus.path, ["inspect", model], environment: environment)
        #expect(explicit.contains("core Haswell (environment, requested Haswell)"), "\(explicit)")
    }

    @Test func threadCountFollowsACgroupQuota() throws {
        let group = "/sys/fs/cgroup/cpu/apus-test-\(getpid())"
        guard FileManager.default.isExecutableFile(atPath: Self.apus.path), let model = fixtureModel(),
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), getuid() == 0,
            (try? FileManager.default.createDirectory(atPath: group, withIntermediateDirectories: false)) != nil
        else { return }
        defer { rmdir(group) }
        try "100000".write(toFile: group + "/cpu.cfs_period_us", atomically: false, encoding: .utf8)
        try "100000".write(toFile: group + "/cpu.cfs_quota_us", atomically: false, encoding: .utf8)
        let script = "echo $$ > \(group)/cgroup.procs && exec \(Self.apus.path) inspect \(model)"
        let limited = try run("/bin/sh", ["-c", script], environment: ProcessInfo.processInfo.environment)
        #expect(limited.contains("threads: 1"), "\(limited)")
        let unlimited = try run(Self.apus.path, ["inspect", model], environment: ProcessInfo.processInfo.environment)
        #expect(unlimited.contains("threads: \(CPUAvailability.usableCPUCount())\n"), "\(unlimited)")
    }
}
