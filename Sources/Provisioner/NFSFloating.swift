import ArgumentParser
import CommandSupport
import Exec
import Foundation
import Logging
import Seed

/// `aquarium-provision nfs-takeover`: run by keepalived on the node that has just taken the NFS floating address
/// (`notify_master`). NFS-Ganesha keeps its CephFS session 300 s after its node died, and with it the capabilities of
/// the files it had open: clients of the new holder would wait that long for them, and an MDS that took a rank over
/// meanwhile waits for the session until it is evicted (NFSRecovery). Every peer whose NFS port does not
/// answer (three tries, two seconds apart) has the sessions of its NFS entity evicted (and blocklisted: a peer that was
/// only cut off cannot write behind the new holder's back). Peers that answer are left alone.
public struct NFSTakeoverCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "nfs-takeover",
        abstract: "Run by keepalived when this node takes the NFS floating address: evict the CephFS sessions of dead NFS peers.",
        discussion: """
            Example:
              aquarium-provision nfs-takeover --peer node-2=192.0.2.12   # keepalived
            """,
        shouldDisplay: false)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    @Option(help: "The CephFS file system the exports are on.")
    public var filesystem: String = "cephfs"

    @Option(name: .customLong("peer"), help: "Another NFS node as NAME=ADDRESS (repeatable).")
    public var peers: [String] = []

    @Option(help: ArgumentHelp("Append the log to this file (keepalived discards a notify script's output).", valueName: "file"))
    public var log: String?

    @Option(help: ArgumentHelp("The floating address: start its NFS server on this node once the dead peers' sessions are gone.",
                               valueName: "address"))
    public var floatingAddress: String?

    /// How long a dead peer's eviction is retried; the NFS nodes' `maintenance watch` keeps looking afterwards.
    static let evictionDeadline: Double = 300

    public init() {}

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        try appendNotifyLog(to: log, "nfs-takeover \(peers.joined(separator: " "))")
        let logger = global.logger("aquarium.provision")
        let events = EventLog(path: layout.eventsFile)
        let tools = CephTools(layout: layout, logger: logger)
        // Held from here: an `nfs-release` keepalived runs meanwhile (the address left again) waits, then stops what
        // this started (seen in the QEMU rack: node 2 took the address, node 1 took it back a second later, and node
        // 2's release ran before its takeover started the server).
        let lock = floatingAddress == nil ? nil : try FloatingServerLock(layout)
        defer { lock?.release() }
        let target = "mds.\(filesystem):0"
        var evicted: [String] = [], failed: [String] = []
        for peer in peers {
            let parts = peer.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, IPAddress(parts[1]) != nil else {
                throw ValidationError("--peer \(peer): expected NAME=ADDRESS")
            }
            let (name, address) = (parts[0], parts[1])
            if NFSRecovery.answers(address) { continue }
            logger.notice("NFS peer \(name) (\(address)) does not answer on port \(Seed.NFS.port): evicting the sessions of nfs.\(name)")
            // The dead peer often held the active MDS too: then rank 0 is failing over while this runs and the eviction
            // fails until a standby has taken the rank; the peer's session survives the failover and keeps this
            // node's clients waiting (seen in RackTests: the read through the floating address hung for 240 s, and
            // evicting by hand released it at once). Try again for a while.
            let deadline = Date().addingTimeInterval(Self.evictionDeadline)
            var lastFailure = ""
            repeat {
                // By session id, found by `client_metadata.entity_id` (see `NFSRecovery.evict`): the MDS that took rank
                // 0 over rebuilt node 1's session from its journal without its auth name (seen in RackTests).
                guard let list = NFSRecovery.sessionList(target, tools: tools),
                      let sessions = NFSRecovery.deadNodeSessions(name: name, address: address, sessionList: list) else {
                    lastFailure = "cannot list the sessions of rank 0 of \(filesystem)"
                    logger.info("evicting nfs.\(name): \(lastFailure); trying again (the MDS may be failing over)")
                    sleep(5)
                    continue
                }
                if sessions.isEmpty {
                    // Complete only once the MDS has replayed its journal: in up:replay the sessions only the journal
                    // holds are not listed yet.
                    if NFSRecovery.hasReplayed(filesystem: filesystem, rank: 0, tools: tools) {
                        lastFailure = ""
                        break
                    }
                    lastFailure = "rank 0 of \(filesystem) has not replayed its journal yet"
                    logger.info("evicting nfs.\(name): no session listed, but \(lastFailure); looking again")
                    sleep(3)
                    continue
                }
                for id in sessions {
                    let result = NFSRecovery.evict(session: id, from: target, tools: tools)
                    lastFailure = result?.status == 0 ? "the MDS accepted the eviction of session \(id) but still lists it"
                        : "status \(result?.status ?? -1): \(result?.errorOutput.suffix(300) ?? "ceph did not run")"
                    logger.info("evicting session \(id) of nfs.\(name): status \(result?.status ?? -1)")
                }
                sleep(2)
            } while Date() < deadline
            if lastFailure.isEmpty {
                evicted.append(name)
            } else {
                logger.warning("could not evict nfs.\(name) within \(Int(Self.evictionDeadline)) s: \(lastFailure)")
                failed.append(name)
            }
        }
        var detail = evicted.isEmpty ? "took the floating address" : "took the floating address; evicted the NFS sessions of "
            + evicted.joined(separator: ", ")
        if !failed.isEmpty { detail += "; could not evict the NFS sessions of " + failed.joined(separator: ", ") }
        var started = false
        if let floatingAddress, let lock {
            guard let address = IPAddress(floatingAddress) else { throw ValidationError("--floating-address \(floatingAddress): not an IP address") }
            guard let server = try FloatingNFSServer(address: address, filesystem: filesystem, layout: layout, logger: logger) else {
                throw ValidationError("\(layout.stateFile) has no cluster identity: this node was never provisioned")
            }
            do {
                started = try server.start(holding: lock)
                if started { detail += "; started its NFS server (its clients reclaim their opens and locks in the grace period)" }
            } catch {
                detail += "; could not start its NFS server: \(error)"
                events.append(ProvisionEvent(event: "nfs.takeover", changed: !evicted.isEmpty, detail: detail))
                throw error
            }
        }
        events.append(ProvisionEvent(event: "nfs.takeover", changed: !evicted.isEmpty || started, detail: detail))
        print(evicted.isEmpty ? "no NFS peer to evict" : "evicted the NFS sessions of " + evicted.joined(separator: ", "))
    }
}

/// `aquarium-provision nfs-release`: run by keepalived when this node loses the NFS floating address (or keepalived
/// stops): stops the floating address's NFS server here, so that the new holder's takes its clients over.
public struct NFSReleaseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "nfs-release",
        abstract: "Run by keepalived when this node loses the NFS floating address: stop its NFS server here.",
        discussion: """
            Example:
              aquarium-provision nfs-release --filesystem cephfs   # keepalived
            """,
        shouldDisplay: false)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    @Option(help: ArgumentHelp("Append the log to this file (keepalived discards a notify script's output).", valueName: "file"))
    public var log: String?

    @Option(help: "The CephFS file system the exports are on.")
    public var filesystem: String = "cephfs"

    public init() {}

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        try appendNotifyLog(to: log, "nfs-release")
        let logger = global.logger("aquarium.provision")
        guard let configured = FloatingNFSServer.configured(layout),
              let server = try FloatingNFSServer(address: configured.address, filesystem: filesystem, layout: layout, logger: logger)
        else { return }
        let lock = try FloatingServerLock(layout)
        defer { lock.release() }
        guard let evicted = try server.stop(holding: lock) else { return }
        logger.notice("stopped the floating NFS server; evicted its sessions \(evicted)")
        EventLog(path: layout.eventsFile).append(ProvisionEvent(event: "nfs.release", changed: true,
                                                                detail: "lost the floating address; stopped its NFS server"))
        print("stopped the floating NFS server")
    }
}

/// Held while the floating address's NFS server is started or stopped on this node (an exclusive `flock` on
/// `ROOT/run/aquarium/nfs-floating.lock`): by the `nfs` step, `nfs-takeover`, `nfs-release` and `maintenance watch`.
final class FloatingServerLock {
    private var descriptor: Int32

    init(_ layout: Layout) throws(ProvisionError) {
        let path = layout.pidDir + "/nfs-floating.lock"
        try Files.makeDirectory(layout.pidDir)
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .failed("cannot open \(path): \(String(cString: strerror(errno)))") }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw .failed("cannot lock \(path): \(reason)")
            }
        }
    }

    func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}

/// The NFS server of the floating address on this node (`nfs.virtual_ip`): its configuration and key are on every NFS
/// node; it runs only on the node that holds the address. Started and stopped here, and only here, by the `nfs` step,
/// `nfs-takeover`, `nfs-release` and `maintenance watch`, each holding `FloatingServerLock`.
struct FloatingNFSServer {
    var address: IPAddress
    var filesystem: String
    /// This node's own address: where this node's floating server's CephFS sessions come from.
    var nodeAddress: IPAddress
    var layout: Layout
    var launcher: any DaemonLauncher
    var tools: CephTools
    var logger: Logger

    /// The server on the node under `layout`, as its provisioning recorded it; nil when the node was never provisioned.
    init?(address: IPAddress, filesystem: String, layout: Layout, logger: Logger) throws {
        guard let identity = try ProvisionState.load(layout.stateFile).identity else { return nil }
        self.init(address: address, filesystem: filesystem, nodeAddress: identity.address, layout: layout,
                  launcher: Launchers.make(identity.launcher, layout: layout, logger: logger),
                  tools: CephTools(layout: layout, logger: logger), logger: logger)
    }

    init(address: IPAddress, filesystem: String, nodeAddress: IPAddress, layout: Layout, launcher: any DaemonLauncher,
         tools: CephTools, logger: Logger) {
        (self.address, self.filesystem, self.nodeAddress, self.layout) = (address, filesystem, nodeAddress, layout)
        (self.launcher, self.tools, self.logger) = (launcher, tools, logger)
    }

    /// The address and file system of the floating server configured on this node (its ganesha.conf, written by the
    /// `nfs` step); nil on a node without one.
    static func configured(_ layout: Layout) -> (address: IPAddress, filesystem: String)? {
        guard let config = Files.read(layout.floatingGaneshaConf), let address = NFSConfig.bindAddress(in: config) else { return nil }
        return (address, NFSConfig.filesystem(in: config) ?? "cephfs")
    }

    /// How long a live previous holder of the address has to stop its floating server (keepalived told it to).
    static let handOverDeadline: Double = 30
    /// Starts of a server that came up without its exports before giving up.
    static let startAttempts = 3

    var daemon: DaemonSpec { NFSConfig.floatingDaemon(layout) }
    var log: String { NFSConfig.floatingLog(layout) }
    var target: String { "mds.\(filesystem):0" }

    var isRunning: Bool { launcher.isRunning(daemon) }

    /// Starts the server when this node holds the address and it does not run; true when it started it. Its sessions
    /// go first: this node's own from before (a server that exited or was stopped keeps its session), a dead holder's
    /// (evicted with its node by `nfs-takeover`), a live one's (the address moved back to a node of higher priority:
    /// it stops its server when keepalived tells it, and what is left after `handOverDeadline` is evicted). The server
    /// then reads the recovery records its predecessor wrote (the same node id) and opens its grace period.
    ///
    /// keepalived runs `nfs-takeover` and `nfs-release` at once when the address comes and goes within a moment (seen
    /// while a rack forms): the server starts only while the address is here, and is stopped again when the address
    /// leaves while it starts. A server that came up without its exports (another node's floating server was still
    /// starting, with the same session id: "Unable to mount Ceph cluster", seen in the QEMU rack) is stopped and started
    /// again once the other one is gone.
    func start(holding lock: FloatingServerLock) throws(ProvisionError) -> Bool {
        guard NFSConfig.holds(address), !isRunning else { return false }
        for attempt in 1...Self.startAttempts {
            _ = NFSRecovery.evictFloating(at: nodeAddress.description, filesystem: filesystem, tools: tools)
            waitForOtherServers()
            guard NFSConfig.holds(address) else {
                logger.notice("\(address) left this node before its NFS server started; not starting it")
                return false
            }
            let logStart = NFSConfig.logSize(log)
            _ = try launcher.ensureRunning(daemon)
            try launcher.confirmStarted()
            var gone = false
            try CephTools.wait("the floating NFS server to listen on \(address):\(Seed.NFS.port)", seconds: 60) {
                gone = !NFSConfig.holds(address)
                return gone || Ports.isListening(host: address.description, port: Seed.NFS.port)
            }
            if gone {
                // A second floating server would take the new holder's CephFS session (NFS-Ganesha's reclaim of its
                // predecessor's session).
                logger.notice("\(address) left this node while its NFS server started; stopping it")
                _ = try stop(holding: lock)
                return false
            }
            if let failure = NFSConfig.exportFailure(log: log, from: logStart) {
                logger.warning("the floating NFS server started without its exports (attempt \(attempt) of \(Self.startAttempts)): \(failure)")
                _ = try stop(holding: lock)
                continue
            }
            logger.notice("started the floating NFS server on \(address)")
            return true
        }
        throw .failed("the floating NFS server of \(address) started without its exports \(Self.startAttempts) times; see \(log)")
    }

    /// Stops the server and evicts its session (NFS-Ganesha keeps it after it stopped, for a reclaim by itself: the
    /// next holder's server would wait for it). The sessions evicted; nil when the server was not running.
    func stop(holding lock: FloatingServerLock) throws(ProvisionError) -> [Int]? {
        guard isRunning else { return nil }
        try launcher.stop(daemon)
        return NFSRecovery.evictFloating(at: nodeAddress.description, filesystem: filesystem, tools: tools) ?? []
    }

    /// Waits up to `handOverDeadline` for the floating server's sessions elsewhere to go, then evicts what is left.
    func waitForOtherServers() {
        let deadline = Date().addingTimeInterval(Self.handOverDeadline)
        var left: [(id: Int, address: String?)] = []
        repeat {
            guard let list = NFSRecovery.sessionList(target, tools: tools),
                  let sessions = NFSRecovery.sessions(of: NFSConfig.floatingUser, sessionList: list) else {
                sleep(2)
                continue
            }
            left = sessions
            if left.isEmpty { break }
            logger.info("the floating NFS server still has sessions at \(left.map { $0.address ?? "?" }); waiting for them to close")
            sleep(2)
        } while Date() < deadline
        for session in left {
            logger.notice("evicting session \(session.id) of \(NFSConfig.floatingUser) at \(session.address ?? "?")")
            _ = NFSRecovery.evict(session: session.id, from: target, tools: tools)
        }
    }
}

extension Operations {
    /// On an NFS node (a `maintenance watch` round): the floating address's server started again when this node holds
    /// the address and the server is not running (it exited; systemd does not restart it: only where the address is).
    /// What it did; nil when nothing.
    func keepFloatingNFSServer() -> String? {
        guard let configured = FloatingNFSServer.configured(layout), NFSConfig.holds(configured.address),
              let lock = try? FloatingServerLock(layout) else { return nil }
        defer { lock.release() }
        let address = configured.address
        let server = FloatingNFSServer(address: address, filesystem: configured.filesystem, nodeAddress: identity.address,
                                       layout: layout, launcher: launcher, tools: tools, logger: logger)
        do {
            guard try server.start(holding: lock) else { return nil }
        } catch {
            logger.warning("could not start the NFS server of \(address): \(error)")
            return nil
        }
        let line = "started the NFS server of \(address) again: this node holds the address and the server was not running"
        record("nfs.floating.restarted", line)
        return line
    }
}

/// Sends standard error to `path` (appended; keepalived discards a notify script's output), after a dated line.
private func appendNotifyLog(to path: String?, _ line: String) throws {
    guard let path else { return }
    try Files.makeDirectory((path as NSString).deletingLastPathComponent)
    let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
    guard descriptor >= 0 else { throw ValidationError("--log \(path): \(String(cString: strerror(errno)))") }
    dup2(descriptor, STDERR_FILENO)
    close(descriptor)
    FileHandle.standardError.write(Data("\(ISO8601DateFormatter().string(from: Date())) \(line)\n".utf8))
}
