import CApusSupport
import Foundation

/// How many CPUs this process may really use: the smaller of its affinity mask and its cgroup
/// CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up.
///
/// Container runtimes limit CPU with quotas while the host's core count stays visible, so
/// `ProcessInfo.activeProcessorCount` alone oversubscribes a pod limited to one CPU.
public enum CPUAvailability {
    /// CPUs usable by this process (at least 1).
    public static func usableCPUCount() -> Int {
        var count = Int(apus_affinity_cpu_count())
        if count <= 0 { count = ProcessInfo.processInfo.activeProcessorCount }
        if let quota = cgroupQuotaCPUs() { count = min(count, quota) }
        return max(1, count)
    }

    /// The cgroup CPU limit of this process in whole CPUs (quota / period, rounded up), or `nil`
    /// when there is none.
    public static func cgroupQuotaCPUs(
        procCgroup: String? = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
        readFile: (String) -> String? = { try? String(contentsOfFile: $0, encoding: .utf8) }
    ) -> Int? {
        guard let procCgroup else { return nil }
        var limits: [Int] = []
        for line in procCgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let controllers = parts[1].split(separator: ",")
            let path = String(parts[2])
            if parts[0] == "0" && parts[1].isEmpty {
                // cgroup v2: walk from the process's group up to the root; every level may limit.
                var current = path
                while true {
                    let file = "/sys/fs/cgroup" + (current == "/" ? "" : current) + "/cpu.max"
                    if let text = readFile(file), let limit = parseCPUMax(text) { limits.append(limit) }
                    if current == "/" || current.isEmpty { break }
                    current = String(current[..<(current.lastIndex(of: "/") ?? current.startIndex)])
                    if current.isEmpty { current = "/" }
                }
            } else if controllers.contains("cpu") {
                let mount = "/sys/fs/cgroup/" + controllers.joined(separator: ",")
                for base in [mount, "/sys/fs/cgroup/cpu"] {
                    for directory in [base + path, base] {
                        if let quota = readFile(directory + "/cpu.cfs_quota_us"),
                            let period = readFile(directory + "/cpu.cfs_period_us"),
                            let limit = parseCFS(quota: quota, period: period)
                        {
                            limits.append(limit)
                        }
                    }
                }
            }
        }
        return limits.min()
    }

    /// Parses cgroup v2 `cpu.max` (`"max 100000"` or `"150000 100000"`) into whole CPUs.
    public static func parseCPUMax(_ text: String) -> Int? {
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 2, fields[0] != "max", let quota = Int(fields[0]), let period = Int(fields[1]) else {
            return nil
        }
        return wholeCPUs(quota: quota, period: period)
    }

    /// Parses cgroup v1 `cpu.cfs_quota_us` (-1 means unlimited) and `cpu.cfs_period_us`.
    public static func parseCFS(quota: String, period: String) -> Int? {
        guard let quota = Int(quota.trimmingCharacters(in: .whitespacesAndNewlines)),
            let period = Int(period.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return nil }
        return wholeCPUs(quota: quota, period: period)
    }

    private static func wholeCPUs(quota: Int, period: Int) -> Int? {
        guard quota > 0, period > 0 else { return nil }
        return max(1, (quota + period - 1) / period)
    }
}
