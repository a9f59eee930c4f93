import Exec
import Foundation
import Seed

/// NFS-Ganesha asks the MDS to keep its CephFS session for a reclaim (it gives the session a uuid and a 300 s timeout),
/// so that the same server, restarted, takes its clients' state back. An MDS that takes a rank over keeps such a
/// session through its reconnect phase even when its client never reconnects, then waits in `up:clientreplay`, and
/// every client of the file system with it, until the session is reclaimed or evicted: nothing times it out in that
/// state (seen in RackTests: node 1, holding the active MDS and serving NFS, lost power, and the MDS that took its
/// rank waited for node 1's session until the test gave up). The sessions of NFS servers that no longer answer are
/// evicted: by `nfs-takeover` when keepalived moves the floating address, and by each NFS node's `maintenance watch`
/// (without a floating address, or when the takeover could not).
public enum NFSRecovery {
    /// A rank of a file system that waits in `up:clientreplay`.
    public struct WaitingRank: Equatable, Sendable {
        public var filesystem: String
        public var rank: Int
        public var daemon: String
    }

    /// A session the MDS keeps for a reclaim, and where its client was.
    public struct KeptSession: Equatable, Sendable {
        public var id: Int
        public var entity: String
        public var address: String
    }

    /// A rank of a file system, the daemon holding it and its state (`up:replay`, `up:active`, ...).
    public struct RankState: Equatable, Sendable {
        public var filesystem: String
        public var rank: Int
        public var daemon: String
        public var state: String
    }

    /// Every rank held by a daemon, from `ceph fs dump --format json`, by file system and rank.
    public static func rankStates(fsDump json: String) -> [RankState] {
        struct Dump: Decodable {
            struct FileSystem: Decodable { var mdsmap: MDSMap }
            struct MDSMap: Decodable {
                var fsName: String
                var info: [String: Daemon]
                enum CodingKeys: String, CodingKey { case fsName = "fs_name", info }
            }
            struct Daemon: Decodable { var name: String; var rank: Int; var state: String }
            var filesystems: [FileSystem]
        }
        guard let dump = try? JSONDecoder().decode(Dump.self, from: Data(json.utf8)) else { return [] }
        return dump.filesystems.flatMap { filesystem in
            filesystem.mdsmap.info.values.filter { $0.rank >= 0 }
                .map { RankState(filesystem: filesystem.mdsmap.fsName, rank: $0.rank, daemon: $0.name, state: $0.state) }
        }.sorted { ($0.filesystem, $0.rank) < ($1.filesystem, $1.rank) }
    }

    /// The ranks in `up:clientreplay`, from `ceph fs dump --format json`.
    public static func ranksInClientReplay(fsDump json: String) -> [WaitingRank] {
        rankStates(fsDump: json).filter { $0.state == "up:clientreplay" }
            .map { WaitingRank(filesystem: $0.filesystem, rank: $0.rank, daemon: $0.daemon) }
    }

    /// The states of an MDS that has replayed its journal. Before (`up:replay`), its session list lacks the sessions
    /// only the journal holds: an empty list then does not mean a session is gone.
    static let replayedStates: Set<String> = ["up:reconnect", "up:rejoin", "up:clientreplay", "up:active", "up:stopping"]

    /// True when a daemon holds `rank` of `filesystem` and has replayed its journal (`ceph fs dump --format json`).
    public static func hasReplayed(fsDump json: String, filesystem: String, rank: Int) -> Bool {
        rankStates(fsDump: json).contains { $0.filesystem == filesystem && $0.rank == rank && replayedStates.contains($0.state) }
    }

    /// The sessions an MDS keeps for a reclaim (a timeout in their client's metadata) whose client has not reconnected,
    /// from `ceph tell mds.FS:RANK session ls --format json`.
    public static func keptSessions(sessionList json: String) -> [KeptSession] {
        guard let sessions = try? JSONDecoder().decode([Session].self, from: Data(json.utf8)) else { return [] }
        return sessions.compactMap { session in
            guard session.reconnecting == true, let metadata = session.clientMetadata, metadata["timeout"] != nil,
                  case .string(let entity)? = metadata["entity_id"], let address = session.inst.flatMap(address(inst:))
            else { return nil }
            return KeptSession(id: session.id, entity: entity, address: address)
        }
    }

    /// The ids of the sessions whose client says it is `entity` (`client_metadata.entity_id`, which an MDS keeps
    /// through a failover; the session's auth name it does not), from `session ls`; nil when `json` is not a list.
    public static func sessionIDs(of entity: String, sessionList json: String) -> [Int]? {
        sessions(of: entity, sessionList: json)?.map(\.id)
    }

    /// The sessions of `entity` (as `sessionIDs`), with the address each client had.
    public static func sessions(of entity: String, sessionList json: String) -> [(id: Int, address: String?)]? {
        guard let sessions = try? JSONDecoder().decode([Session].self, from: Data(json.utf8)) else { return nil }
        return sessions.filter { $0.clientMetadata?["entity_id"] == .string(entity) }.map { ($0.id, $0.inst.flatMap(address(inst:))) }
    }

    /// The sessions of a dead NFS node `name` at `address`: its own server's (`nfs.NAME`), and the floating address's
    /// server's when that ran there.
    public static func deadNodeSessions(name: String, address: String, sessionList json: String) -> [Int]? {
        guard let own = sessionIDs(of: "nfs.\(name)", sessionList: json),
              let floating = sessions(of: NFSConfig.floatingUser, sessionList: json) else { return nil }
        return own + floating.filter { $0.address.flatMap(IPAddress.init) == IPAddress(address) }.map(\.id)
    }

    /// A session of `session ls`, as far as it is needed here.
    struct Session: Decodable {
        var id: Int
        var reconnecting: Bool?
        var inst: String?
        var clientMetadata: [String: JSONScalar]?
        enum CodingKeys: String, CodingKey { case id, reconnecting, inst, clientMetadata = "client_metadata" }
    }

    /// The client's address in a session's `inst` (`client.4258 10.77.0.1:0/4077150794`, `client.7 v1:[fd77::1]:0/9`).
    public static func address(inst: String) -> String? {
        guard var text = inst.split(separator: " ").last.map(String.init), inst.contains(" ") else { return nil }
        for prefix in ["v1:", "v2:", "any:"] where text.hasPrefix(prefix) { text.removeFirst(prefix.count) }
        if let slash = text.lastIndex(of: "/") { text = String(text[..<slash]) }
        if text.hasPrefix("["), let end = text.firstIndex(of: "]") {
            text = String(text[text.index(after: text.startIndex)..<end])
        } else if let colon = text.lastIndex(of: ":") {
            text = String(text[..<colon])
        }
        return IPAddress(text) != nil ? text : nil
    }

    /// True when `address` accepts a connection on the NFS port within three tries, two seconds apart.
    static func answers(_ address: String) -> Bool {
        for attempt in 0..<3 {
            if Ports.isListening(host: address, port: Seed.NFS.port) { return true }
            if attempt < 2 { sleep(2) }
        }
        return false
    }

    /// A string, number or bool of a JSON object whose other values are not needed.
    enum JSONScalar: Decodable, Equatable {
        case string(String)
        case other

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            self = (try? container.decode(String.self)).map(JSONScalar.string) ?? .other
        }
    }
}

extension NFSRecovery {
    /// `ceph tell mds.FS:RANK session ls`; nil when the rank's MDS does not answer.
    static func sessionList(_ target: String, tools: CephTools) -> String? {
        guard let list = try? tools.run("ceph", ["tell", target, "session", "ls", "--format", "json"], timeout: 30,
                                        accepted: Set(0...255)), list.status == 0 else { return nil }
        return list.output
    }

    /// Evicts (and blocklists) one session by id: a session an MDS rebuilt from its journal has no auth name, so
    /// `client evict auth_name=...` would match nothing and succeed. The tool's result; nil when it did not run.
    static func evict(session id: Int, from target: String, tools: CephTools) -> CommandResult? {
        try? tools.run("ceph", ["tell", target, "client", "evict", "id=\(id)"], timeout: 30, accepted: Set(0...255))
    }

    /// Evicts the floating address's NFS server's sessions from `address` (that server is not running there). The ids
    /// evicted; nil when rank 0 does not answer.
    static func evictFloating(at address: String, filesystem: String, tools: CephTools) -> [Int]? {
        let target = "mds.\(filesystem):0"
        guard let list = sessionList(target, tools: tools),
              let sessions = sessions(of: NFSConfig.floatingUser, sessionList: list) else { return nil }
        let stale = sessions.filter { $0.address.flatMap(IPAddress.init) == IPAddress(address) }.map(\.id)
        for id in stale { _ = evict(session: id, from: target, tools: tools) }
        return stale
    }

    /// True when rank `rank` of `filesystem` is held by an MDS that has replayed its journal.
    static func hasReplayed(filesystem: String, rank: Int, tools: CephTools) -> Bool {
        guard let dump = try? tools.run("ceph", ["fs", "dump", "--format", "json"], timeout: 30, accepted: Set(0...255)),
              dump.status == 0 else { return false }
        return hasReplayed(fsDump: dump.output, filesystem: filesystem, rank: rank)
    }
}

extension Operations {
    /// On an NFS node with the admin key (a `maintenance watch` round): the sessions a rank in `up:clientreplay` keeps
    /// for NFS servers that no longer answer are evicted (and their clients blocklisted). What it did; nil when nothing.
    func releaseKeptNFSSessions() -> String? {
        guard identity.runsMonitor, FileManager.default.fileExists(atPath: layout.ganeshaConf),
              let dump = try? tools.run("ceph", ["fs", "dump", "--format", "json"], timeout: 30, accepted: Set(0...255)),
              dump.status == 0 else { return nil }
        var done: [String] = []
        for rank in NFSRecovery.ranksInClientReplay(fsDump: dump.output) {
            let target = "mds.\(rank.filesystem):\(rank.rank)"
            guard let list = NFSRecovery.sessionList(target, tools: tools) else { continue }
            for session in NFSRecovery.keptSessions(sessionList: list) where !NFSRecovery.answers(session.address) {
                let evicted = NFSRecovery.evict(session: session.id, from: target, tools: tools)
                guard evicted?.status == 0 else {
                    logger.warning("could not evict session \(session.id) of \(session.entity) from \(target): \(evicted?.errorOutput ?? "")")
                    continue
                }
                let line = "evicted session \(session.id) of \(session.entity) (\(session.address), its NFS port does not answer): "
                    + "rank \(rank.rank) of \(rank.filesystem) (mds.\(rank.daemon)) waited for it in up:clientreplay"
                record("nfs.session.evicted", line)
                done.append(line)
            }
        }
        return done.isEmpty ? nil : done.joined(separator: "; ")
    }
}
