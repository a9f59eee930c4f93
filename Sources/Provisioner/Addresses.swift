import Foundation
import Seed

/// This node's addresses, for the systemd launcher.
enum NodeAddresses {
    /// A static address of the seed in `network`, else an address of a local interface in it.
    static func find(in network: IPNetwork, seed: Seed) -> String? {
        if let configured = seed.network.interfaces.flatMap(\.addresses).first(where: { network.contains($0.address) }) {
            return configured.address.description
        }
        return local().first { IPAddress($0).map(network.contains) ?? false }
    }

    static func primary(seed: Seed) -> String? {
        seed.network.publicNetwork.flatMap { find(in: $0, seed: seed) }
    }

    static func local() -> [String] {
        var result: [String] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            if let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) {
                var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    var inAddress = pointer.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &inAddress, &buffer, socklen_t(INET_ADDRSTRLEN))
                }
                result.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            cursor = entry.pointee.ifa_next
        }
        return result
    }
}

/// Ports on 127.0.0.1.
public enum Ports {
    /// True when nothing listens on `port` (a bind to 127.0.0.1 succeeds).
    public static func isFree(_ port: Int) -> Bool {
        withIPv4Socket(host: "127.0.0.1", port: port) { bind($0, $1, $2) } == 0
    }

    /// True when something accepts connections on `host:port`.
    public static func isListening(host: String, port: Int) -> Bool {
        withIPv4Socket(host: host, port: port) { connect($0, $1, $2) } == 0
    }

    /// Runs `call` (bind or connect) on a new TCP socket with the address `host:port`; -1 when no socket was had.
    static func withIPv4Socket(host: String, port: Int,
                               _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// A base port with `count` free ports from it, searched from a pseudo-random start in 20000..<32700 (below
    /// Linux's ephemeral range, so an outgoing connection cannot take one between the check and the bind) so
    /// concurrent clusters on one machine rarely race for the same range.
    public static func findFreeRange(count: Int = 100) -> Int? {
        let slots = 127
        let start = Int.random(in: 0..<slots)
        for offset in 0..<slots {
            let base = 20000 + ((start + offset) % slots) * 100
            if (base..<(base + count)).allSatisfy(isFree) { return base }
        }
        return nil
    }
}
