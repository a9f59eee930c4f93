import Exec
import Foundation
import TestSupport

/// A private L2 network for one QEMU guest: a network namespace of its own holding a tap device (the guest's NIC) with
/// the host side's address 10.0.2.2/24, and dnsmasq answering DHCP there only (no DNS), as an operator's network would.
/// Test clients run inside the namespace and reach the guest at the seed's static address directly: Ceph clients
/// (which need every daemon's own address), iSCSI initiators. Nothing is added to this machine's own namespace and the
/// namespace has no route anywhere else, so the guest's traffic stays between it and the test. `with` removes it all,
/// also when the body throws: the processes in the namespace (only ours: QEMU, dnsmasq, clients) are killed first.
struct GuestNetwork {
    static let hostAddress = "10.0.2.2"
    let namespace: String
    let tap = "aqtap0"
    let directory: String

    static func with<T>(directory: String, _ body: (GuestNetwork) throws -> T) throws -> T {
        let network = GuestNetwork(namespace: "aqe2e-" + String(UUID().uuidString.prefix(6)).lowercased(), directory: directory)
        defer { network.remove() }
        try network.create()
        return try body(network)
    }

    /// `argv` run inside the namespace.
    func command(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) -> Command {
        Command("ip", ["netns", "exec", namespace, executable] + arguments, environment: environment)
    }

    func create() throws {
        try Command("ip", ["netns", "add", namespace]).run()
        try Command("ip", ["-n", namespace, "link", "set", "lo", "up"]).run()
        try Command("ip", ["-n", namespace, "tuntap", "add", "dev", tap, "mode", "tap"]).run()
        try Command("ip", ["-n", namespace, "addr", "add", Self.hostAddress + "/24", "dev", tap]).run()
        try Command("ip", ["-n", namespace, "link", "set", tap, "up"]).run()
        // DHCP for the image's default network (the seed's static address replaces it), no DNS (--port=0). It detaches
        // itself; its pid file is how remove() finds it, besides the namespace's own process list.
        try command("dnsmasq", ["--port=0", "--no-resolv", "--no-hosts", "--bind-interfaces", "--interface=" + tap,
                                "--except-interface=lo", "--dhcp-range=10.0.2.100,10.0.2.150,255.255.255.0,1h",
                                "--dhcp-leasefile=" + directory + "/dnsmasq.leases", "--pid-file=" + directory + "/dnsmasq.pid",
                                "--log-facility=" + directory + "/dnsmasq.log"]).run()
    }

    func remove() {
        for pid in pids() { kill(pid, SIGKILL) }
        for _ in 0..<50 where !pids().isEmpty { usleep(100_000) }
        _ = try? Command("ip", ["netns", "delete", namespace]).run()
        try? FileManager.default.removeItem(atPath: directory + "/dnsmasq.pid")
    }

    func pids() -> [Int32] {
        let output = (try? Command("ip", ["netns", "pids", namespace]).run(acceptedStatuses: Set(0...255)).output) ?? ""
        return output.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
    }
}
