import Foundation
import Seed

/// This node's addresses, for the systemd launcher. Typed (`IPAddress`) until they are rendered into ceph.conf, the
/// monitor map or a URL.
enum NodeAddresses {
    static let loopback = IPAddress("127.0.0.1")!

    /// A static address of the seed in `network`, else an address of a local interface in it (IPv4 or IPv6, as the
    /// network is).
    static func find(in network: IPNetwork, seed: Seed) -> IPAddress? {
        choose(in: network, configured: seed.network.interfaces.flatMap(\.addresses).map(\.address), local: local())
    }

    /// The first of `configured` (the seed's static addresses) in `network`, else the first of `local` in it.
    static func choose(in network: IPNetwork, configured: [IPAddress], local: @autoclosure () -> [IPAddress]) -> IPAddress? {
        configured.first(where: network.contains) ?? local().first(where: network.contains)
    }

    static func primary(seed: Seed) -> IPAddress? {
        seed.network.publicNetwork.flatMap { find(in: $0, seed: seed) }
    }

    /// The IPv4 and IPv6 addresses of this machine's interfaces (getifaddrs), in its order.
    static func local() -> [IPAddress] {
        var result: [IPAddress] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            if let address = entry.pointee.ifa_addr, let parsed = self.address(of: address) { result.append(parsed) }
            cursor = entry.pointee.ifa_next
        }
        return result
    }

    /// The address in a socket address of family AF_INET or AF_INET6; nil for other families (AF_PACKET, ...).
    static func address(of socketAddress: UnsafePointer<sockaddr>) -> IPAddress? {
        switch Int32(socketAddress.pointee.sa_family) {
        case AF_INET:
            return socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                withUnsafeBytes(of: pointer.pointee.sin_addr) { IPAddress(networkOrder: Array($0)) }
            }
        case AF_INET6:
            return socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                withUnsafeBytes(of: pointer.pointee.sin6_addr) { IPAddress(networkOrder: Array($0)) }
            }
        default:
            return nil
        }
    }
}

/// TCP ports: free ones on 127.0.0.1, and whether something listens at an address.
public enum Ports {
    /// True when nothing listens on `port` (a bind to 127.0.0.1 succeeds).
    public static func isFree(_ port: Int) -> Bool {
        openSocket(host: "127.0.0.1", port: port) { bind($0, $1, $2) }.map { close($0) } != nil
    }

    /// True when something accepts connections on `host:port` (IPv4, or IPv6 with or without brackets).
    public static func isListening(host: String, port: Int) -> Bool {
        openSocket(host: host, port: port) { connect($0, $1, $2) }.map { close($0) } != nil
    }

    /// A new TCP socket on which `call` (bind or connect) with `host:port` returned 0; nil when it did not (the socket
    /// closed) or `host` is not an address (IPv4, or IPv6 with or without brackets). The caller closes it.
    static func openSocket(host: String, port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32? {
        guard var address = socketAddress(host: host, port: port) else { return nil }
        let fd = socket(Int32(address.storage.ss_family), Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        let status = withUnsafePointer(to: &address.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, address.length) }
        }
        guard status == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// `host:port` as a socket address: IPv6 when `host` has a colon (brackets allowed), else IPv4.
    static func socketAddress(host: String, port: Int) -> (storage: sockaddr_storage, length: socklen_t)? {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard let port = UInt16(exactly: port) else { return nil }
        var storage = sockaddr_storage()
        let valid = withUnsafeMutablePointer(to: &storage) { pointer -> Bool in
            if bare.contains(":") {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    $0.pointee.sin6_family = sa_family_t(AF_INET6)
                    $0.pointee.sin6_port = in_port_t(port.bigEndian)
                    return inet_pton(AF_INET6, bare, &$0.pointee.sin6_addr) == 1
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                $0.pointee.sin_family = sa_family_t(AF_INET)
                $0.pointee.sin_port = in_port_t(port.bigEndian)
                return inet_pton(AF_INET, bare, &$0.pointee.sin_addr) == 1
            }
        }
        guard valid else { return nil }
        let length = storage.ss_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        return (storage, socklen_t(length))
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
