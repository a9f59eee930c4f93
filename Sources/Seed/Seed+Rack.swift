import Foundation

// `cluster.rack`: what a rack node's seed says about its cluster (docs/seed.md, docs/rack.md).

extension Seed {
    /// The cluster a rack node belongs to, decided offline for the whole rack (`aquarium-image rack seeds`, docs/rack.md):
    /// its fsid, every monitor, and the keys this node's role needs. Every node of the rack gets the same fsid and
    /// monitor list, so the monitor nodes can form the cluster in any order and the storage nodes find it.
    public struct Rack: Sendable, Equatable, Encodable {
        /// Lowercase UUID.
        public var fsid: String
        /// Every monitor of the rack, in the rack file's order; 1 to 7, odd counts advised.
        public var monitors: [RackMonitor]
        /// The key of `client.aquarium-join`, which registers OSDs (data access: docs/provisioner.md). A secret.
        public var joinKey: String
        /// `mon.`'s key: monitor nodes only. A secret.
        public var monitorKey: String?
        /// `client.admin`'s key: monitor nodes only. A secret.
        public var adminKey: String?
        /// How long the join key is accepted after the cluster formed, in seconds (`join_key_lifetime: 24h`).
        public var joinKeyLifetime: Int?

        public init(fsid: String, monitors: [RackMonitor], joinKey: String, monitorKey: String? = nil,
                    adminKey: String? = nil, joinKeyLifetime: Int? = nil) {
            self.fsid = fsid
            self.monitors = monitors
            self.joinKey = joinKey
            self.monitorKey = monitorKey
            self.adminKey = adminKey
            self.joinKeyLifetime = joinKeyLifetime
        }

        /// The monitor whose host is `hostname` (compared by its short name), if any.
        public func monitor(forHost hostname: String) -> RackMonitor? {
            let short = hostname.split(separator: ".").first.map(String.init) ?? hostname
            return monitors.first { $0.shortName == short }
        }
    }

    public struct RackMonitor: Sendable, Equatable, Encodable {
        /// The monitor node's host name (its daemons are named by its short form).
        public var host: String
        /// Its address in the public network, where its monitor listens (port 3300).
        public var address: IPAddress

        public init(host: String, address: IPAddress) {
            self.host = host
            self.address = address
        }

        public var shortName: String { host.split(separator: ".").first.map(String.init) ?? host }
    }
}
