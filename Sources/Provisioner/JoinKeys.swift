import Foundation
import JSONCoding
import Seed

/// The cluster's own record of its join key, in the monitors' config-key store (`aquarium/join-key`), so that every
/// monitor node's reconcile and `join-token` see the same: when the key expires and whether it was revoked. Ceph keys
/// do not expire by themselves; the cluster enforces the expiry by removing `client.aquarium-join` at the first
/// reconcile after it (the `join-token` step of every run, and the periodic rerun's timer) or at `--revoke`.
public struct JoinKeyRecord: Codable, Equatable, Sendable {
    public static let configKey = "aquarium/join-key"
    /// How long a join key is accepted after it was made (the cluster's formation, or `--rotate`), unless told.
    public static let defaultLifetime = 24 * 3600

    /// Seconds since 1970, UTC.
    public var expires: Int
    public var revoked: Bool

    public init(expires: Int, revoked: Bool = false) {
        self.expires = expires
        self.revoked = revoked
    }

    public func isUsable(at now: Date) -> Bool { !revoked && Double(expires) > now.timeIntervalSince1970 }

    /// Why the key is no longer accepted; nil while it is.
    public func unusableReason(at now: Date) -> String? {
        if revoked { return "revoked" }
        if !isUsable(at: now) { return "expired at \(Self.timeText(expires))" }
        return nil
    }

    static func timeText(_ seconds: Int) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// A lifetime as an operator writes it: a whole number and a unit, `s`, `m`, `h` or `d` (`90m`, `24h`, `7d`).
    public static func parseLifetime(_ text: String) throws(ProvisionError) -> Int {
        guard let seconds = Lifetime.seconds(text.trimmingCharacters(in: .whitespaces)) else {
            throw .invalidInput("'\(text)' is not a lifetime: write a whole number and a unit, s, m, h or d (for example "
                + "90m, 24h or 7d)")
        }
        return seconds
    }
}

/// The join key's life with the admin key: made, kept, rotated, revoked, removed once expired.
struct JoinKeys {
    let tools: CephTools

    /// The caps as (service, capability) pairs.
    static var wantedCaps: [String: String] {
        Dictionary(uniqueKeysWithValues: stride(from: 0, to: JoinToken.caps.count, by: 2).map { (JoinToken.caps[$0], JoinToken.caps[$0 + 1]) })
    }

    /// The cluster's record; nil before the first key was made (or on a cluster made before keys expired).
    func record() throws(ProvisionError) -> JoinKeyRecord? {
        let result = try tools.run("ceph", ["config-key", "get", JoinKeyRecord.configKey], accepted: [0, 2])
        guard result.status == 0 else { return nil }
        guard let record = try? JSONDecoder().decode(JoinKeyRecord.self, from: result.standardOutput) else {
            throw .failed("the cluster's \(JoinKeyRecord.configKey) is not a join key record: \(result.output.prefix(200)); "
                + "`aquarium-provision join-token --rotate` writes a new one")
        }
        return record
    }

    func save(_ record: JoinKeyRecord) throws(ProvisionError) {
        let text = (try? JSONCoding.text(record, pretty: false)) ?? "{}"
        try tools.run("ceph", ["config-key", "set", JoinKeyRecord.configKey, text])
    }

    /// The entity's key and caps; nil when it does not exist.
    func entity() throws(ProvisionError) -> (key: String, caps: [String: String])? {
        let existing = try tools.run("ceph", ["auth", "get", JoinToken.entity, "--format", "json"], accepted: [0, 2])
        guard existing.status == 0,
              case .success(let entries?) = CephJSON.decode([CephJSON.AuthEntry].self, from: existing.standardOutput),
              let entry = entries.first(where: { $0.entity == JoinToken.entity }), let key = entry.key else { return nil }
        return (key, entry.caps ?? [:])
    }

    /// Makes the entity (a new key) unless it exists; sets its caps back when they were changed. Returns the key and
    /// what was done.
    func ensureEntity() throws(ProvisionError) -> (key: String, actions: [String]) {
        if let (key, caps) = try entity() {
            guard caps != Self.wantedCaps else { return (key, []) }
            try tools.run("ceph", ["auth", "caps", JoinToken.entity] + JoinToken.caps)
            return (key, ["set the caps of \(JoinToken.entity)"])
        }
        let created = try tools.run("ceph", ["auth", "get-or-create", JoinToken.entity] + JoinToken.caps + ["--format", "json"])
        let entries = try? CephJSON.decode([CephJSON.AuthEntry].self, from: created.standardOutput).get()
        guard let key = entries?.first?.key, JoinToken.isCephxKey(key) else {
            throw .failed("the monitor returned no usable key for \(JoinToken.entity)")
        }
        return (key, ["created \(JoinToken.entity)"])
    }

    /// Removes the entity: from now on the monitors refuse its key. True when there was one.
    @discardableResult
    func removeEntity() throws(ProvisionError) -> Bool {
        guard try entity() != nil else { return false }
        try tools.run("ceph", ["auth", "rm", JoinToken.entity])
        return true
    }

    /// A new key (the old one stops working at once) that expires `lifetime` seconds from `now`.
    func rotate(lifetime: Int, now: Date = Date()) throws(ProvisionError) -> (key: String, record: JoinKeyRecord) {
        try removeEntity()
        let record = JoinKeyRecord(expires: Int(now.timeIntervalSince1970) + lifetime)
        // The record first: a run that dies in between leaves a usable record, and the next reconcile makes the key.
        try save(record)
        let (key, _) = try ensureEntity()
        return (key, record)
    }

    /// No join key from now on, until `--rotate`.
    func revoke(now: Date = Date()) throws(ProvisionError) -> Bool {
        let removed = try removeEntity()
        let previous = try record()
        try save(JoinKeyRecord(expires: min(previous?.expires ?? Int.max, Int(now.timeIntervalSince1970)), revoked: true))
        return removed || previous?.revoked != true
    }
}
