import CommandSupport
import FileLayer
import Foundation
import JSONCoding
import Logging
import Seed

#if canImport(Glibc)
import Glibc
#endif

/// One node's seed as `aquarium-image rack seeds` makes it.
public struct RackNodeSeed: Sendable, Equatable {
    public var node: RackFile.Node
    public var role: ClusterRole
    public var seed: Seed
    /// The seed file's text, which `SeedLoader` reads back to `seed`.
    public var text: String
    /// `seeds/<name>.yaml` on the stick's seed volume and under the output directory.
    public var relativePath: String
}

/// A rack's seeds, made offline: the same fsid, monitors and keys for every node, each node's seed holding only the
/// keys its role needs (docs/rack.md).
public enum RackSeeds {
    /// The seed of `node`: its machine, its interface with the static addresses, the rack's networks and defaults, and
    /// the cluster section of its role. Storage nodes get only the join key and no services.
    public static func seed(for node: RackFile.Node, in rack: RackFile, secrets: RackSecrets) -> Seed {
        let role = rack.role(of: node)
        let isMonitor = role == .monitor
        let host = Seed.Host(hostname: node.hostname, timezone: rack.defaults.timezone,
                             ntpServers: rack.defaults.ntpServers, users: rack.defaults.users, machine: node.machine,
                             requirements: rack.defaults.requirements)
        let interface = Seed.Interface(selector: node.interfaceSelector,
                                       addresses: [node.address] + (node.clusterAddress.map { [$0] } ?? []),
                                       gateway: node.gateway)
        let network = Seed.Network(interfaces: [interface], nameservers: rack.defaults.nameservers,
                                   publicNetwork: rack.cluster.publicNetwork, clusterNetwork: rack.cluster.clusterNetwork)
        let rackSection = Seed.Rack(fsid: secrets.fsid, monitors: rack.rackMonitors, joinKey: secrets.joinKey,
                                    monitorKey: isMonitor ? secrets.monitorKey : nil,
                                    adminKey: isMonitor ? secrets.adminKey : nil,
                                    joinKeyLifetime: isMonitor ? rack.cluster.joinKeyLifetime : nil)
        let cluster = Seed.Cluster(name: rack.cluster.name, role: role, rack: rackSection,
                                   services: isMonitor ? rack.cluster.services : Seed.Services())
        return Seed(host: host, network: network, disks: node.disks, cluster: cluster, expires: rack.defaults.expires)
    }

    /// The comment on top of a node's seed.
    static func header(for node: RackFile.Node, role: ClusterRole, rackFile: String) -> [String] {
        let keys = role == .monitor
            ? "It holds the cluster's monitor and admin keys: whoever reads it has the whole cluster. Keep it secret."
            : "It holds the rack's join key, which registers OSDs and so reads and writes the cluster's data. Keep it secret."
        return ["Aquarium seed for \(node.hostname) (role: \(role.rawValue)), made by `aquarium-image rack seeds` from "
                + "\((rackFile as NSString).lastPathComponent) (docs/rack.md).", keys,
                "Edits are lost when the seeds are made again: change the rack file instead."]
    }

    /// Every node's seed, rendered and read back: a seed that does not validate, or reads back as another seed, is a
    /// bug of this program and fails (exit 1) before anything is written.
    public static func make(_ rack: RackFile, secrets: RackSecrets, rackFile: String, outputDirectory: String)
        throws(ImageError) -> [RackNodeSeed] {
        var seeds: [RackNodeSeed] = []
        for node in rack.nodes {
            let seed = seed(for: node, in: rack, secrets: secrets)
            let role = seed.cluster.role
            let relativePath = SeedFileName.volumePath(node.seedName)
            let shown = outputDirectory + "/" + relativePath
            let text = seed.yamlText(header: header(for: node, role: role, rackFile: rackFile))
            do {
                _ = try SeedInjector.validateTargetPath(relativePath)
                let readBack = try SeedLoader.parse(text, file: shown)
                guard readBack == seed else {
                    throw ImageError.failure(shown, "the seed made for \(node.hostname) reads back differently; this is a "
                                             + "bug of aquarium-image, nothing was written")
                }
            } catch let error as ImageError {
                throw error
            } catch {
                throw .failure(shown, "the seed made for \(node.hostname) does not validate; this is a bug of "
                               + "aquarium-image, nothing was written:\n\(error)")
            }
            seeds.append(RackNodeSeed(node: node, role: role, seed: seed, text: text, relativePath: relativePath))
        }
        return seeds
    }
}

/// What `rack seeds` and `rack validate` say about one node.
public struct RackNodeEntry: Codable, Equatable, Sendable {
    public var host: String
    public var role: String
    /// The seed's path on the stick's seed volume (`seeds/<name>.yaml`).
    public var seed: String
    /// The seed file written (`rack seeds`), or null (`rack validate`).
    @Nullable public var file: String?
    /// Its detached signature, when signed.
    @Nullable public var signature: String?
    @Nullable public var serial: String?
    @Nullable public var mac: String?
    public var address: String
}

/// What `aquarium-image rack seeds --json` prints (docs/rack.md).
public struct RackSeedsReport: Codable, Equatable, Sendable, CommandOutput {
    public var rackFile: String
    public var cluster: String
    public var fsid: String
    /// The monitor hosts, in placement order.
    public var monitors: [String]
    public var secretsFile: String
    /// True when an existing secrets file was read and reused (the seeds join the cluster made before).
    public var secretsReused: Bool
    public var secretsCreated: String
    /// The fingerprint of the key the seeds were signed with.
    @Nullable public var signedWith: String?
    public var nodes: [RackNodeEntry]
    /// Seeds in the seeds directory that this rack file did not make (left as they are).
    public var otherSeeds: [String]
    /// What the operator should fix that did not stop the command (a secrets file others can read).
    public var warnings: [String] = []

    public var text: String {
        var lines = ["\(rackFile): cluster \(cluster), fsid \(fsid), \(nodes.count) node\(nodes.count == 1 ? "" : "s"), "
                     + "monitors \(monitors.joined(separator: ", "))"]
        if secretsReused {
            lines.append("reused the secrets in \(secretsFile) (made \(secretsCreated)): these seeds belong to the same "
                         + "cluster as the seeds made with it before, so a node added later joins it")
        } else {
            lines.append("made new secrets \(secretsFile) (mode 0600): the cluster's fsid and keys. Keep it secret, and "
                         + "keep it: seeds for nodes added later are made from it")
        }
        let hostWidth = nodes.map(\.host.count).max() ?? 0
        for node in nodes {
            var line = node.host.padding(toLength: hostWidth, withPad: " ", startingAt: 0) + "  "
                + node.role.padding(toLength: 7, withPad: " ", startingAt: 0) + "  " + (node.file ?? node.seed)
            if let signature = node.signature { line += " (signed: \(signature))" }
            lines.append(line)
        }
        if let signedWith { lines.append("signed with \(signedWith)") }
        lines += warnings.map { "warning: " + $0 }
        if !otherSeeds.isEmpty {
            lines.append("note: the seeds directory also holds \(otherSeeds.joined(separator: ", ")), which this rack "
                         + "file did not make; `seed inject --seeds-dir` copies every seed there, so remove what does not "
                         + "belong")
        }
        if let first = nodes.first?.file {
            lines.append("next: aquarium-image seed inject IMAGE --seeds-dir \((first as NSString).deletingLastPathComponent)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// What `aquarium-image rack validate --json` prints: the placement, nothing written.
public struct RackPlacementReport: Codable, Equatable, Sendable, CommandOutput {
    public var rackFile: String
    public var cluster: String
    public var publicNetwork: String
    @Nullable public var clusterNetwork: String?
    public var monitors: [String]
    public var nodes: [RackNodeEntry]

    public init(rackFile: String, rack: RackFile) {
        self.rackFile = rackFile
        cluster = rack.cluster.name
        publicNetwork = rack.cluster.publicNetwork.description
        clusterNetwork = rack.cluster.clusterNetwork?.description
        monitors = rack.monitors
        nodes = rack.nodes.map { node in
            RackNodeEntry(host: node.hostname, role: rack.role(of: node).rawValue,
                          seed: SeedFileName.volumePath(node.seedName), file: nil, signature: nil, serial: node.serial,
                          mac: node.mac, address: node.address.description)
        }
    }

    public var text: String {
        let placed = "\(monitors.count) monitor\(monitors.count == 1 ? "" : "s") (\(monitors.joined(separator: ", ")))"
        var lines = ["\(rackFile): valid: cluster \(cluster), public network \(publicNetwork)"
                     + (clusterNetwork.map { ", cluster network \($0)" } ?? "") + ", \(nodes.count) node"
                     + (nodes.count == 1 ? "" : "s") + ", \(placed)"]
        let hostWidth = nodes.map(\.host.count).max() ?? 0
        for node in nodes {
            lines.append(node.host.padding(toLength: hostWidth, withPad: " ", startingAt: 0) + "  "
                         + node.role.padding(toLength: 7, withPad: " ", startingAt: 0) + "  " + node.address + "  " + node.seed)
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Writes a rack's secrets and seeds into a directory: `DIR/secrets.yaml` and `DIR/seeds/<name>.yaml`, all mode 0600,
/// the directories 0700 when they are made.
public struct RackSeedWriter {
    public var logger: Logger

    public init(logger: Logger = Logger(label: "aquarium.image.rack")) {
        self.logger = logger
    }

    /// Reads the rack file, reuses `DIR/secrets.yaml` or makes new secrets, and writes every node's seed (signed with
    /// `signingKey` when given, exactly as `seed sign` signs).
    public func write(rackFile: String, outputDirectory: String, signingKey: SeedPrivateKey?, now: Date = Date())
        throws -> RackSeedsReport {
        guard !outputDirectory.isEmpty else { throw ImageError.invalid("--output", "name the directory for the seeds") }
        let rack = try RackLoader.load(path: rackFile)
        let directory = outputDirectory.count > 1 && outputDirectory.hasSuffix("/")
            ? String(outputDirectory.dropLast()) : outputDirectory
        let secretsPath = directory + "/" + RackSecrets.fileName
        let seedsDirectory = directory + "/seeds"

        // Everything is decided and checked before anything is written.
        var reused = false
        var warnings: [String] = []
        let secrets: RackSecrets
        if Self.exists(secretsPath) {
            secrets = try RackSecrets.load(path: secretsPath)
            reused = true
            var info = stat()
            if stat(secretsPath, &info) == 0, info.st_mode & 0o077 != 0 {
                warnings.append("\(secretsPath) can be read by other users (mode \(String(info.st_mode & 0o777, radix: 8))): "
                                + "it holds the cluster's keys; run chmod 600 on it")
            }
            try Self.checkSameMonitors(secrets: secrets, rack: rack, rackFile: rackFile, secretsPath: secretsPath)
            logger.info("\(secretsPath): reusing the secrets of cluster \(secrets.fsid)")
        } else {
            secrets = RackSecrets.generate(monitors: rack.rackMonitors, now: now)
        }
        for key in secrets.secrets {
            if let problem = CephxKey.problem(key) {
                throw ImageError.failure(secretsPath, "a key made for the rack is not a cephx key (\(problem)); this is a "
                                         + "bug of aquarium-image, nothing was written")
            }
        }
        let seeds = try RackSeeds.make(rack, secrets: secrets, rackFile: rackFile, outputDirectory: directory)

        try Self.makePrivateDirectory(directory)
        if !reused {
            try Self.writePrivate(Data(secrets.yamlText.utf8), to: secretsPath)
            logger.info("\(secretsPath): new secrets for cluster \(secrets.fsid)")
        }
        try Self.makePrivateDirectory(seedsDirectory)
        var entries: [RackNodeEntry] = []
        for seed in seeds {
            let path = directory + "/" + seed.relativePath
            try Self.writePrivate(Data(seed.text.utf8), to: path)
            var signature: String?
            if let signingKey {
                signature = try SeedSigning.sign(file: path, privateKey: signingKey)
            } else if Self.exists(path + SeedSignature.signatureSuffix) {
                // A signature of an earlier seed would not match this one.
                guard unlink(path + SeedSignature.signatureSuffix) == 0 else {
                    throw ImageError.failure(path + SeedSignature.signatureSuffix, "cannot remove the signature of the "
                                             + "earlier seed: \(errnoText())")
                }
            }
            entries.append(RackNodeEntry(host: seed.node.hostname, role: seed.role.rawValue, seed: seed.relativePath,
                                         file: path, signature: signature, serial: seed.node.serial, mac: seed.node.mac,
                                         address: seed.node.address.description))
        }
        let made = Set(seeds.map { ($0.relativePath as NSString).lastPathComponent })
        let others = ((try? FileManager.default.contentsOfDirectory(atPath: seedsDirectory)) ?? [])
            .filter { $0.hasSuffix(".yaml") && !made.contains($0) }.sorted()
        return RackSeedsReport(rackFile: rackFile, cluster: rack.cluster.name, fsid: secrets.fsid, monitors: rack.monitors,
                               secretsFile: secretsPath, secretsReused: reused, secretsCreated: secrets.created.text,
                               signedWith: signingKey?.publicKey.fingerprint, nodes: entries, otherSeeds: others,
                               warnings: warnings)
    }

    /// A formed cluster's monitors do not change by making seeds again: reused secrets that record other monitors are
    /// refused (exit 2), saying how to name the recorded ones.
    static func checkSameMonitors(secrets: RackSecrets, rack: RackFile, rackFile: String, secretsPath: String)
        throws(ImageError) {
        guard let recorded = secrets.monitors, recorded != rack.rackMonitors else { return }
        func list(_ monitors: [Seed.RackMonitor]) -> String {
            monitors.map { "\($0.host) (\($0.address))" }.joined(separator: ", ")
        }
        throw ImageError.invalid(rackFile, "places the monitors on \(list(rack.rackMonitors)), but the cluster of "
                                 + "\(secretsPath) was made with \(list(recorded)); its monitors do not change by making "
                                 + "seeds again. Name them in cluster.monitors: [\(recorded.map(\.host).joined(separator: ", "))] "
                                 + "with their addresses as before, or use another output directory for a new cluster")
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Creates `path` with mode 0700 when it does not exist (its parents as usual); an existing directory is kept as
    /// it is.
    static func makePrivateDirectory(_ path: String) throws(ImageError) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else { throw .invalid(path, "exists and is not a directory") }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw .failure(parent, "cannot create the directory: \(error.localizedDescription)")
            }
        }
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
            throw .failure(path, "cannot create the directory: \(errnoText())")
        }
        // The mode asked for, whatever the umask.
        guard chmod(path, 0o700) == 0 else { throw .failure(path, "cannot set mode 0700: \(errnoText())") }
    }

    /// Writes a file with mode 0600 through the one atomic write.
    static func writePrivate(_ data: Data, to path: String) throws(ImageError) {
        do {
            try AtomicFile.write(data, to: path, mode: 0o600, noFollow: true)
        } catch {
            throw .failure(path, "cannot write: \(error)")
        }
    }
}
