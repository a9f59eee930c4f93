#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, parsed strictly by `inet_pton` (no zone ids, no leading zeros in IPv4).
public struct IPAddress: Sendable, Hashable, CustomStringConvertible, Codable {
    public enum Family: Sendable, Hashable { case v4, v6 }

    /// 4 or 16 bytes, network order.
    public let bytes: [UInt8]

    public var family: Family { bytes.count == 4 ? .v4 : .v6 }
    public var bitCount: Int { bytes.count * 8 }

    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 45, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            return nil
        }
        if text.contains(":") {
            var storage = in6_addr()
            guard inet_pton(AF_INET6, text, &storage) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &storage) { Array($0) }
        } else {
            var storage = in_addr()
            guard inet_pton(AF_INET, text, &storage) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &storage) { Array($0) }
        }
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// An address from its 4 (IPv4) or 16 (IPv6) bytes in network order, as in `in_addr` and `in6_addr`.
    public init?(networkOrder bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// `ADDRESS:PORT` for a URL, a socket or Ceph's address syntax: IPv6 in brackets (`[fd00::1]:3300`), as RFC 3986
    /// and Ceph's entity_addr_t want it.
    public func endpoint(port: Int) -> String {
        family == .v6 ? "[\(description)]:\(port)" : "\(description):\(port)"
    }

    /// Decodes the text form (what `encode(to:)` writes).
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let address = IPAddress(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not an IP address")
        }
        self = address
    }

    /// The canonical text form (`inet_ntop`): `10.0.0.1`, `fd00::1`.
    public var description: String {
        var buffer = [CChar](repeating: 0, count: 64)
        let ok: Bool = bytes.withUnsafeBytes { raw in
            buffer.withUnsafeMutableBufferPointer { out in
                guard let base = raw.baseAddress, let outBase = out.baseAddress else { return false }
                return inet_ntop(family == .v4 ? AF_INET : AF_INET6, base, outBase, socklen_t(out.count)) != nil
            }
        }
        guard ok else { return bytes.map { String($0) }.joined(separator: ".") }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// This address with every bit after the first `prefixLength` cleared.
    public func masked(to prefixLength: Int) -> IPAddress {
        var out = bytes
        for index in out.indices {
            let bitsBefore = index * 8
            if bitsBefore >= prefixLength { out[index] = 0; continue }
            let keep = prefixLength - bitsBefore
            if keep < 8 { out[index] &= UInt8(truncatingIfNeeded: 0xff << (8 - keep)) }
        }
        return IPAddress(bytes: out)
    }

    /// This address with every bit after the first `prefixLength` set (the IPv4 broadcast address).
    func filled(from prefixLength: Int) -> IPAddress {
        var out = bytes
        for index in out.indices {
            let bitsBefore = index * 8
            if bitsBefore >= prefixLength { out[index] = 0xff; continue }
            let keep = prefixLength - bitsBefore
            if keep < 8 { out[index] |= UInt8(truncatingIfNeeded: 0xff >> keep) }
        }
        return IPAddress(bytes: out)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A network in CIDR notation with no host bits set: `10.0.0.0/24`, `fd00:1::/64`.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible, Encodable {
    public let address: IPAddress
    public let prefixLength: Int

    /// Parses `ADDRESS/PREFIX`; fails when host bits are set (see `InterfaceAddress` for addresses with a prefix).
    public init?(_ text: String) {
        guard let parsed = InterfaceAddress(text), parsed.address == parsed.network.address else { return nil }
        self = parsed.network
    }

    public init(address: IPAddress, prefixLength: Int) {
        self.prefixLength = max(0, min(prefixLength, address.bitCount))
        self.address = address.masked(to: self.prefixLength)
    }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == address.family && other.masked(to: prefixLength) == address
    }

    public var description: String { "\(address)/\(prefixLength)" }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An interface address with its prefix length: `10.1.0.11/24`.
public struct InterfaceAddress: Sendable, Hashable, CustomStringConvertible, Encodable {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])) else { return nil }
        let prefixText = parts[1]
        guard !prefixText.isEmpty, prefixText.count <= 3, prefixText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              !(prefixText.count > 1 && prefixText.hasPrefix("0")),
              let prefix = Int(prefixText), prefix <= address.bitCount else { return nil }
        self.address = address
        self.prefixLength = prefix
    }

    public init(address: IPAddress, prefixLength: Int) {
        self.address = address
        self.prefixLength = max(0, min(prefixLength, address.bitCount))
    }

    /// The subnet this address is in.
    public var network: IPNetwork { IPNetwork(address: address, prefixLength: prefixLength) }

    public var description: String { "\(address)/\(prefixLength)" }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
