import Archive
import Foundation
import JSONCoding
import Logging
import Seed

extension Redactor {
    /// The one redactor (`Seed.Redactor`) with every secret on this node: the keys from every keyring under
    /// `layout`'s Ceph directories, the S3, dashboard and iSCSI credentials, the shadow hashes, the seed's secrets and the join token.
    public static func collect(layout: Layout, seed: Seed?) -> Redactor {
        var redactor = Redactor()
        for directory in [layout.etcCeph, layout.cephLib] {
            guard let walker = FileManager.default.enumerator(atPath: directory) else { continue }
            for case let relative as String in walker where (relative as NSString).lastPathComponent.contains("keyring") {
                redactor.add(keyringKeys(Files.read(directory + "/" + relative) ?? ""))
            }
        }
        let userFiles = ((try? FileManager.default.contentsOfDirectory(atPath: layout.s3UsersDirectory)) ?? [])
            .filter { $0.hasSuffix(".json") }.map { layout.s3UsersDirectory + "/" + $0 }
        for file in [layout.s3CredentialsFile] + userFiles {
            if let data = FileManager.default.contents(atPath: file),
               let credentials = try? JSONDecoder().decode(S3Credentials.self, from: data) {
                redactor.add([credentials.accessKey, credentials.secretKey])
            }
        }
        if let data = FileManager.default.contents(atPath: layout.dashboardCredentialsFile),
           let credentials = try? JSONDecoder().decode(DashboardCredentials.self, from: data) {
            redactor.add([credentials.password])
        }
        if let data = FileManager.default.contents(atPath: layout.iscsiCredentialsFile),
           let credentials = try? JSONDecoder().decode(ISCSICredentials.self, from: data) {
            redactor.add([credentials.password, credentials.apiPassword] + [credentials.mutualPassword].compactMap { $0 }
                         + (credentials.clients ?? []).map(\.password))
        }
        for line in (Files.read(layout.path("/etc/shadow")) ?? "").split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count > 1, fields[1].hasPrefix("$") { redactor.add([String(fields[1])]) }
        }
        if let seed { redactor.add(seed.secrets) }
        // The bootstrap node's join token (its key is also in the monitor's keyring-free auth database, so it is
        // named here explicitly).
        if let token = Files.read(layout.joinTokenFile)?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty {
            redactor.add([token] + token.split(separator: ".", maxSplits: 1).dropFirst().map(String.init))
        }
        return redactor
    }
}

/// Writes `aquarium-provision support-bundle`: a gzip'd tar with the node record, the seed (redacted), events,
/// the state, Ceph's view of the cluster, the configuration and the logs, every file scrubbed by `Redactor`.
/// Keyrings, the S3 credentials files and shadow are never included.
public struct SupportBundle {
    public let layout: Layout
    public let seed: Seed?
    public let nodeRecordPath: String?
    let logger: Logger
    /// At most this much of the end of each log file goes in.
    public var logTailBytes = 2 * 1024 * 1024

    public init(layout: Layout, seed: Seed?, nodeRecordPath: String?, logger: Logger) {
        self.layout = layout
        self.seed = seed
        self.nodeRecordPath = nodeRecordPath
        self.logger = logger
    }

    /// Writes the bundle; returns the names of the files in it.
    @discardableResult
    public func write(to output: String) throws(ProvisionError) -> [String] {
        let redactor = Redactor.collect(layout: layout, seed: seed)
        var files: [(String, String)] = []
        let recordPath = nodeRecordPath ?? layout.path("/var/lib/aquarium/node.json")
        if let text = Files.read(recordPath) { files.append(("node-record.json", text)) }
        if let seed { files.append(("seed.redacted.json", seed.redactedDescription)) }
        if let text = Files.read(layout.eventsFile) { files.append(("events.jsonl", text)) }
        if let text = Files.read(layout.stateFile) { files.append(("provision-state.json", text)) }
        if let text = Files.read(layout.cephConf) { files.append(("etc/ceph/\(layout.cluster).conf", text)) }
        let report = StatusCollector.collect(root: layout.root, cluster: layout.cluster, logger: logger)
        if let data = try? JSONCoding.encoder().encode(report) { files.append(("status.json", String(decoding: data, as: UTF8.self))) }
        if report.health != "UNREACHABLE" {
            let state = try? ProvisionState.load(layout.stateFile)
            let tools = CephTools(layout: layout, logger: logger, client: state?.identity?.client(in: layout))
            for (name, arguments) in [("ceph-status.txt", ["status"]), ("ceph-health-detail.txt", ["health", "detail"]),
                                      ("ceph-osd-tree.txt", ["osd", "tree"]), ("ceph-df.txt", ["df"]),
                                      ("ceph-fs-status.txt", ["fs", "status"]), ("ceph-config-dump.txt", ["config", "dump"])] {
                if let result = try? tools.run("ceph", arguments, timeout: 20, accepted: Set(0...255)) {
                    files.append((name, result.output + result.errorOutput))
                }
            }
        }
        // Ceph's logs (the NFS takeovers' too), and NFS-Ganesha's (the node's own server and the floating address's).
        let logDirectories = [(layout.cephLog, "var/log/ceph/"), (layout.path("/var/log/ganesha"), "var/log/ganesha/")]
        let logs = logDirectories.flatMap { directory, prefix in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted().map { (directory + "/" + $0, prefix + $0) }
        }
        for (path, name) in logs {
            guard let handle = FileHandle(forReadingAtPath: path) else { continue }
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()) ?? 0
            let start = size > UInt64(logTailBytes) ? size - UInt64(logTailBytes) : 0
            try? handle.seek(toOffset: start)
            let data = (try? handle.readToEnd()) ?? Data()
            files.append((name, String(decoding: data, as: UTF8.self)))
        }
        do {
            let writer = try ArchiveWriter(path: output, compression: .gzip)
            let now = Int(Date().timeIntervalSince1970)
            var names: [String] = []
            for (name, text) in files {
                let clean = redactor.redact(text)
                let leaks = redactor.leaks(in: clean)
                guard leaks.isEmpty else {
                    throw ProvisionError.failed("refusing to write \(output): \(name) still holds a secret after redaction")
                }
                try writer.addFile("support-bundle/" + name, contents: Array(clean.utf8), mode: 0o644, modificationTime: now)
                names.append(name)
            }
            try writer.finish()
            chmod(output, 0o600)
            return names
        } catch let error as ProvisionError {
            throw error
        } catch {
            throw .failed("cannot write the support bundle \(output): \(error)")
        }
    }
}
