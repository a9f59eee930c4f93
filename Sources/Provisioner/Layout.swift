import FileLayer
import Foundation

/// Where everything lives under the target root (`/` on a node, a temporary directory in tests).
public struct Layout: Sendable, Equatable {
    /// Absolute, without a trailing slash ("" stands for `/`).
    public let root: String
    public let cluster: String

    public init(root: String, cluster: String = "ceph") {
        var normalised = URL(fileURLWithPath: root).standardizedFileURL.path
        while normalised.hasSuffix("/") { normalised.removeLast() }
        self.root = normalised
        self.cluster = cluster
    }

    /// `path` (absolute, as on the node) inside the root.
    public func path(_ path: String) -> String { root + path }

    public var etcCeph: String { path("/etc/ceph") }
    public var cephConf: String { path("/etc/ceph/\(cluster).conf") }
    public var adminKeyring: String { path("/etc/ceph/\(cluster).client.admin.keyring") }
    /// A joined node's key for `client.aquarium-join` (Ceph's default keyring path for that name).
    public var joinKeyring: String { path("/etc/ceph/\(cluster).\(JoinToken.entity).keyring") }
    public var cephLib: String { path("/var/lib/ceph") }
    public var bootstrapDir: String { path("/var/lib/ceph/tmp/aquarium-bootstrap") }
    public var monKeyring: String { bootstrapDir + "/mon.keyring" }
    public var monmap: String { bootstrapDir + "/monmap" }
    public func monData(_ id: String) -> String { path("/var/lib/ceph/mon/\(cluster)-\(id)") }
    public func mgrData(_ id: String) -> String { path("/var/lib/ceph/mgr/\(cluster)-\(id)") }
    public func osdData(_ id: Int) -> String { path("/var/lib/ceph/osd/\(cluster)-\(id)") }
    public func mdsData(_ id: String) -> String { path("/var/lib/ceph/mds/\(cluster)-\(id)") }
    public func rgwData(_ id: String) -> String { path("/var/lib/ceph/radosgw/\(cluster)-rgw.\(id)") }
    public var cephRun: String { path("/run/ceph") }
    public var cephLog: String { path("/var/log/ceph") }
    public var crashDir: String { path("/var/lib/ceph/crash") }

    public var aquariumState: String { path("/var/lib/aquarium") }
    public var stateFile: String { aquariumState + "/provision-state.json" }
    public var eventsFile: String { aquariumState + "/events.jsonl" }
    public var s3CredentialsFile: String { aquariumState + "/s3-admin.json" }
    /// Each seed S3 user's credentials (`services.rgw.users`), mode 0600: `s3-users/NAME.json`.
    public var s3UsersDirectory: String { aquariumState + "/s3-users" }
    public func s3UserCredentialsFile(_ user: String) -> String { s3UsersDirectory + "/" + user + ".json" }
    /// The dashboard's URL and its administrator's first password, mode 0600.
    public var dashboardCredentialsFile: String { aquariumState + "/dashboard.json" }
    /// The iSCSI target's CHAP credentials and rbd-target-api's password, mode 0600.
    public var iscsiCredentialsFile: String { aquariumState + "/iscsi.json" }
    /// The bootstrap node's join token (mode 0600), printed by `aquarium-provision join-token`.
    public var joinTokenFile: String { aquariumState + "/join-token" }
    public var pidDir: String { path("/run/aquarium") }
    /// TMPDIR of the daemons the process launcher starts.
    public var temporaryDirectory: String { path("/tmp") }
    /// The keyring of a client entity, where ceph.conf's `keyring = …/$cluster.$name.keyring` finds it.
    public func keyring(_ entity: String) -> String { path("/etc/ceph/\(cluster).\(entity).keyring") }
    /// RGW's HTTPS certificate (the seed's, with its chain) and private key (0600).
    public var rgwCertificate: String { path("/etc/ceph/\(cluster).rgw-https.crt") }
    public var rgwPrivateKey: String { path("/etc/ceph/\(cluster).rgw-https.key") }
    /// The seed's dashboard certificate and key (0600), as handed to `ceph dashboard set-ssl-certificate(-key)`.
    public var dashboardCertificate: String { path("/etc/ceph/\(cluster).dashboard.crt") }
    public var dashboardPrivateKey: String { path("/etc/ceph/\(cluster).dashboard.key") }
    public var ganeshaConf: String { path("/etc/ganesha/ganesha.conf") }
    /// The NFS server of the floating address (`services.nfs.virtual_ip`): runs where keepalived put the address.
    public var floatingGaneshaConf: String { path("/etc/ganesha/ganesha-floating.conf") }
    public var keepalivedConf: String { path("/etc/keepalived/keepalived.conf") }
    /// What `nfs-takeover` logs when keepalived runs it.
    public var nfsTakeoverLog: String { path("/var/log/ceph/nfs-takeover.log") }
    /// ceph-iscsi's configuration (rbd-target-api reads it from this fixed path), mode 0600.
    public var iscsiGatewayConf: String { path("/etc/ceph/iscsi-gateway.cfg") }
    /// The configuration files our daemons are started with: how a process is recognised as ours.
    public var daemonConfigs: [String] { [cephConf, ganeshaConf, floatingGaneshaConf, keepalivedConf, iscsiGatewayConf] }
    public var systemdUnitDir: String { path("/etc/systemd/system") }
}

/// Small file helpers: atomic writes that report whether anything changed.
enum Files {
    /// Writes `contents` to `path` (atomically, with `mode`) unless it already holds exactly that. Returns true when
    /// the file changed (content or mode).
    @discardableResult
    static func write(_ contents: String, to path: String, mode: mode_t = 0o644) throws(ProvisionError) -> Bool {
        try write(Data(contents.utf8), to: path, mode: mode)
    }

    /// Creates `path` empty with mode 0600 (replacing what was there), for a program to write a secret into.
    static func createPrivate(_ path: String) throws(ProvisionError) {
        unlink(path)
        try makeDirectory((path as NSString).deletingLastPathComponent)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .failed("cannot create \(path): \(String(cString: strerror(errno)))") }
        fchmod(fd, 0o600)
        close(fd)
    }

    /// Writes `data` to `path` through FileLayer's one atomic write (a temporary file beside it, written in full,
    /// fsynced, renamed into place, the directory fsynced; owner and group kept from the file it replaces, as Debian's
    /// /etc/shadow is root:shadow) unless it already holds exactly that with `mode`. Returns true when the file changed.
    @discardableResult
    static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws(ProvisionError) -> Bool {
        if let existing = FileManager.default.contents(atPath: path), existing == data, currentMode(path) == mode {
            return false
        }
        try makeDirectory((path as NSString).deletingLastPathComponent)
        do {
            try AtomicFile.write(data, to: path, mode: mode, keepOwner: true)
        } catch {
            throw .failedBecause("cannot write \(path): \(error.errno)", cause: error)
        }
        return true
    }

    /// Puts `temporary`, written by a Ceph tool, in place of `path` through FileLayer (mode `mode` when given, fsynced,
    /// renamed, the directory fsynced; `temporary` removed on failure).
    static func publish(_ temporary: String, to path: String, mode: mode_t? = nil) throws(ProvisionError) {
        do {
            try AtomicFile.publish(temporary, to: path, mode: mode)
        } catch {
            throw .failedBecause("cannot rename \(temporary) to \(path): \(error.errno)", cause: error)
        }
    }

    static func currentMode(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    static func makeDirectory(_ path: String, mode: Int = 0o755) throws(ProvisionError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: mode])
        } catch {
            throw .failed("cannot create the directory \(path): \(error)")
        }
    }

    static func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
}
