import Exec
import Foundation

/// Several test "hosts" on this machine, each in a network namespace of its own, wired to private bridges that live in
/// one more namespace (the lab's switch): nothing is added to this machine's own network namespace, no namespace has a
/// route anywhere but its lab networks, so test traffic stays between the lab's hosts. Removed when the body ends,
/// also when it throws, after every process still running in a host's namespace was killed (only the lab's own
/// namespaces are ever touched).
///
/// Networks: `public` is 10.77.0.0/24 (IPv4) plus fd77::/64 (IPv6), `cluster` 10.78.0.0/24; host N (from 1) has
/// .N / ::N on each network it is wired to.
public struct NetworkLab {
    public struct Host: Sendable {
        public var name: String
        /// The namespace, for `ip netns exec`.
        public var namespace: String
        public var index: Int
        public var publicIPv4: String { "10.77.0.\(index)" }
        public var publicIPv6: String { "fd77::\(index)" }
        public var clusterIPv4: String { "10.78.0.\(index)" }

        /// `argv` run inside this host's namespace.
        public func command(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) -> Command {
            Command("ip", ["netns", "exec", namespace, executable] + arguments, environment: environment)
        }
    }

    public static let publicNetwork = "10.77.0.0/24"
    public static let publicNetworkIPv6 = "fd77::/64"
    public static let clusterNetwork = "10.78.0.0/24"

    public let id: String
    public let hosts: [Host]
    var switchNamespace: String { "aqlab-\(id)-sw" }

    /// A lab of `count` hosts named `prefix1`, `prefix2`, ...; with `clusterNetwork`, each host also has a second
    /// interface on the cluster network.
    public static func with<T>(hosts count: Int, prefix: String = "node-", clusterNetwork: Bool = false,
                               _ body: (NetworkLab) throws -> T) throws -> T {
        let id = String(UUID().uuidString.prefix(6)).lowercased()
        let hosts = (1...count).map { Host(name: "\(prefix)\($0)", namespace: "aqlab-\(id)-\($0)", index: $0) }
        let lab = NetworkLab(id: id, hosts: hosts)
        defer { lab.remove() }
        try lab.create(clusterNetwork: clusterNetwork)
        return try body(lab)
    }

    func ip(_ arguments: [String]) throws {
        try Command("ip", arguments).run()
    }

    func create(clusterNetwork: Bool) throws {
        try ip(["netns", "add", switchNamespace])
        let bridges = clusterNetwork ? ["br-public", "br-cluster"] : ["br-public"]
        for bridge in bridges {
            try ip(["-n", switchNamespace, "link", "add", bridge, "type", "bridge"])
            try ip(["-n", switchNamespace, "link", "set", bridge, "up"])
        }
        for host in hosts {
            try ip(["netns", "add", host.namespace])
            try ip(["-n", host.namespace, "link", "set", "lo", "up"])
            for (offset, bridge) in bridges.enumerated() {
                // Created in the host's namespace, the switch side moved to the switch: nothing appears here.
                let inside = offset == 0 ? "eth0" : "eth1"
                let outside = "h\(host.index)-\(offset == 0 ? "pub" : "clu")"
                try ip(["-n", host.namespace, "link", "add", inside, "type", "veth", "peer", "name", outside,
                        "netns", switchNamespace])
                try ip(["-n", switchNamespace, "link", "set", outside, "master", bridge])
                try ip(["-n", switchNamespace, "link", "set", outside, "up"])
                if offset == 0 {
                    try ip(["-n", host.namespace, "address", "add", host.publicIPv4 + "/24", "dev", inside])
                    try ip(["-n", host.namespace, "address", "add", host.publicIPv6 + "/64", "dev", inside, "nodad"])
                } else {
                    try ip(["-n", host.namespace, "address", "add", host.clusterIPv4 + "/24", "dev", inside])
                }
                try ip(["-n", host.namespace, "link", "set", inside, "up"])
            }
        }
    }

    /// The pids of the processes in a namespace (`ip netns pids`).
    public func pids(in host: Host) -> [Int32] {
        let output = (try? Command("ip", ["netns", "pids", host.namespace]).run(acceptedStatuses: Set(0...255)).output) ?? ""
        return output.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
    }

    /// Kills every process in the host's namespace (all were started by the test in it): the host "loses power".
    /// Each pid is checked to be in that namespace right before its signal: one that ended after `ip netns pids`
    /// listed it may already belong to another process (on a busy machine with a small pid_max, even to a thread of
    /// this test process), which is in another namespace and left alone.
    public func killAll(in host: Host) {
        guard let namespace = Self.inode("/run/netns/" + host.namespace) else { return }
        for _ in 0..<50 {
            let pids = pids(in: host)
            if pids.isEmpty { return }
            for pid in pids where Self.inode("/proc/\(pid)/ns/net") == namespace { kill(pid, SIGKILL) }
            usleep(100_000)
        }
    }

    /// The inode of what `path` names (a namespace file), following links; nil when it is gone.
    static func inode(_ path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt64(info.st_ino)
    }

    func remove() {
        for host in hosts {
            killAll(in: host)
            _ = try? Command("ip", ["netns", "delete", host.namespace]).run()
        }
        _ = try? Command("ip", ["netns", "delete", switchNamespace]).run()
    }
}
