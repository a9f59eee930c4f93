import Foundation

/// A cephx secret as Ceph writes it into a keyring (`key = AQ...`), made without any Ceph tool: the base64 of 28 bytes,
/// `u16 type = 1` (AES), the creation time as `u32 seconds` and `u32 nanoseconds`, `u16 length = 16` and the 16-byte
/// secret, all little-endian (Ceph's `CryptoKey::encode`). 40 characters that start with `AQ`.
public enum CephxKey {
    /// A new key created at `created`, its secret from `generator`.
    public static func generate<Generator: RandomNumberGenerator>(created: Date = Date(), using generator: inout Generator)
        -> String {
        let since1970 = max(0, created.timeIntervalSince1970)
        let seconds = UInt32(clamping: Int64(since1970.rounded(.down)))
        let nanoseconds = UInt32(clamping: Int64(((since1970 - since1970.rounded(.down)) * 1_000_000_000).rounded(.down)))
        var bytes: [UInt8] = []
        bytes.reserveCapacity(28)
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }
        append(UInt16(1))
        append(seconds)
        append(nanoseconds)
        append(UInt16(16))
        for _ in 0..<2 { append(generator.next() as UInt64) }
        return Data(bytes).base64EncodedString()
    }

    /// A new key from the system's random number generator (getrandom).
    public static func generate(created: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        return generate(created: created, using: &generator)
    }

    /// Why `key` is not a cephx key, or nil when it is one. The message never repeats the key.
    public static func problem(_ key: String) -> String? { SeedSyntax.cephxKeyProblem(key) }
}
