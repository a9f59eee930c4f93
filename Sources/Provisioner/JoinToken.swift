import Foundation

/// The token a node needs to join a cluster: `FSID.KEY.EXPIRES`, the cluster's fsid, the cephx key of the cluster's
/// join entity (`client.aquarium-join`) and when that key expires (seconds since 1970, UTC). `FSID.KEY` (tokens made
/// before keys expired) is still read. It fits the seed's token syntax (16-256 of `A-Z a-z 0-9 + / = . _ -`).
/// A secret that grants data access: whoever holds it can register an OSD, and an OSD's key reads and writes every
/// pool (docs/provisioner.md, "What each secret grants"). The expiry in the token lets an honest node refuse early; the
/// cluster enforces it by removing the key (see `JoinKeyRecord`).
public struct JoinToken: Equatable, Sendable, CustomStringConvertible {
    /// The cephx entity the bootstrap node creates for joining nodes.
    public static let entity = "client.aquarium-join"
    /// Its capabilities: Ceph's own profile for adding OSDs (`osd new`, `osd purge-new`, and reading the maps, which
    /// also answers `ceph health` and `ceph status`), and reading and writing the cluster's event log (the pool
    /// `.aquarium`, `ClusterEventLog`), and the day-two commands a storage node runs on itself: `reboot` (`osd
    /// ok-to-stop`, `noout` for its host) and replacing a failed disk (`osd out`, `osd safe-to-destroy`, `osd destroy`
    /// of its own gone OSD before the new disk takes the id). No keys or configuration database; data through the
    /// OSDs it can create.
    public static let caps = ["mgr", commands.map { "allow command '\($0)'" }.joined(separator: ", "),
                              "mon", "allow profile bootstrap-osd, " + commands.map { "allow command '\($0)'" }.joined(separator: ", "),
                              "osd", "allow rw pool=\(ClusterEventLog.pool)"]
    /// Granted by the monitors and the managers alike: `osd ok-to-stop` and `osd safe-to-destroy` are the managers'
    /// commands, and `osd destroy` asks them too.
    static let commands = ["osd ok-to-stop", "osd safe-to-destroy", "osd set-group", "osd unset-group", "osd out", "osd destroy"]

    /// Lowercase UUID.
    public var fsid: String
    /// A cephx key as `ceph auth get-key` prints it (base64 of 28 bytes: type 1, creation time, length 16, secret).
    public var key: String
    /// When the cluster stops accepting the key, in seconds since 1970 (UTC); nil in a token without one.
    public var expires: Int?

    public init(fsid: String, key: String, expires: Int? = nil) {
        self.fsid = fsid.lowercased()
        self.key = key
        self.expires = expires
    }

    /// `FSID.KEY.EXPIRES` (or `FSID.KEY`), what `aquarium-provision join-token` prints.
    public var text: String { "\(fsid).\(key)" + (expires.map { ".\($0)" } ?? "") }

    /// The expiry as ISO 8601 (UTC), for messages.
    public var expiresText: String? { expires.map(JoinKeyRecord.timeText) }

    /// Refuses (exit 3) a token whose key has expired: the cluster has removed it, or will at its next reconcile.
    public func refuseIfExpired(now: Date = Date(), what: String = "cluster.join.token") throws(ProvisionError) {
        guard let expires, Double(expires) <= now.timeIntervalSince1970 else { return }
        throw .refused("\(what) expired at \(JoinKeyRecord.timeText(expires)); nothing was created. Make a new one with "
            + "`aquarium-provision join-token --rotate` on a monitor node and put it into cluster.join.token")
    }

    /// Never the key: tokens end up in messages.
    public var description: String { "join token for cluster \(fsid)" }

    /// Reads a token; a malformed one is invalid input (exit 2) with a message that says what a token looks like and
    /// where to get one. The message never repeats the token.
    public init(parsing text: String) throws(ProvisionError) {
        let help = "; a join token is FSID.KEY.EXPIRES (the cluster's fsid, a dot, a cephx key, a dot, the expiry in "
            + "seconds since 1970; about 88 characters): print it "
            + "with `aquarium-provision join-token` on the bootstrap node and copy it into cluster.join.token"
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let dot = trimmed.firstIndex(of: ".") else {
            throw .invalidInput("cluster.join.token is not a join token of this tool (no '.' between fsid and key)" + help)
        }
        let fsid = String(trimmed[..<dot])
        var key = String(trimmed[trimmed.index(after: dot)...])
        var expires: Int?
        // A cephx key is base64: it has no '.', so a second one starts the expiry.
        if let second = key.firstIndex(of: ".") {
            let tail = key[key.index(after: second)...]
            key = String(key[..<second])
            guard !tail.isEmpty, tail.count <= 12, tail.allSatisfy(\.isASCIIDigit), let seconds = Int(tail) else {
                throw .invalidInput("cluster.join.token's part after the key is not an expiry time (seconds since 1970)"
                    + help)
            }
            expires = seconds
        }
        guard fsid.count == 36, UUID(uuidString: fsid) != nil else {
            throw .invalidInput("cluster.join.token does not start with a cluster fsid (a UUID such as "
                + "c1548103-2615-4764-ae5d-1ab67261fb22)" + help)
        }
        guard Self.isCephxKey(key) else {
            throw .invalidInput("cluster.join.token's part after the fsid is not a cephx key (base64 of a 16-byte AES "
                + "secret, starting with AQ)" + help)
        }
        self.init(fsid: fsid, key: key, expires: expires)
    }

    /// True for a cephx key in Ceph's encoding: `u16 type = 1 (AES)`, `utime created` (8 bytes), `u16 length = 16`,
    /// 16 bytes of secret; base64 with padding.
    public static func isCephxKey(_ key: String) -> Bool {
        guard key.count == 40, let data = Data(base64Encoded: key), data.count == 28 else { return false }
        let bytes = [UInt8](data)
        return bytes[0] == 1 && bytes[1] == 0 && bytes[10] == 16 && bytes[11] == 0
    }
}

fileprivate extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
