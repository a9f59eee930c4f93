import ArgumentParser
import CommandSupport
import Exec
import Foundation

/// Lines for the operator on stderr (stdout stays for what a script reads).
func operatorLine(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

extension RootOptions {
    /// The day-two operations on this root, telling the operator what they do on stderr.
    func operations(_ global: GlobalOptions) throws(ProvisionError) -> Operations {
        try Operations(root: root, cluster: cluster, logger: global.logger("aquarium.provision"), say: operatorLine)
    }
}

public struct MaintenanceCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "maintenance",
        abstract: "Take a host out of service without moving its data (noout for that host only), and bring it back.",
        discussion: """
            `enter HOST` checks that the host's OSDs can stop (ceph osd ok-to-stop) and that the monitors keep their \
            quorum without it, sets noout for that host only, and stops its daemons: here when HOST is this node, \
            else by HOST's own `maintenance watch` (the aquarium-maintenance service). `exit HOST` undoes it. See \
            docs/operations.md.

            Examples:
              aquarium-provision maintenance enter node-3    # on any monitor node
              aquarium-provision status                      # node-3's daemons down
              aquarium-provision maintenance exit node-3     # when the work is done
            """,
        subcommands: [Enter.self, Exit.self, Watch.self])

    public init() {}

    public struct Enter: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "enter", abstract: "Put HOST in maintenance: checks, noout for its OSDs, its daemons stopped.",
            discussion: """
                Examples:
                  aquarium-provision maintenance enter node-3    # on any monitor node
                  aquarium-provision maintenance enter node-3 --timeout 600
                  aquarium-provision maintenance exit node-3     # when the work is done
                """)

        @OptionGroup public var global: GlobalOptions
        @OptionGroup public var rootOptions: RootOptions
        @Argument(help: "The host (its hostname, as in `ceph osd tree`).") public var host: String
        @Option(name: .long, help: "Seconds to wait for HOST's daemons to stop.") public var timeout: Double = 300

        public init() {}

        public func run() throws {
            let operations = try rootOptions.operations(global)
            try operations.enterMaintenance(host, timeout: timeout)
            print("\(host) is in maintenance; `aquarium-provision maintenance exit \(host)` ends it")
        }
    }

    public struct Exit: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "exit", abstract: "End HOST's maintenance: noout cleared, its daemons started again.",
            discussion: """
                Examples:
                  aquarium-provision maintenance exit node-3
                  aquarium-provision maintenance exit node-3 --timeout 600
                """)

        @OptionGroup public var global: GlobalOptions
        @OptionGroup public var rootOptions: RootOptions
        @Argument(help: "The host.") public var host: String
        @Option(name: .long, help: "Seconds to wait for HOST's daemons to come back.") public var timeout: Double = 300

        public init() {}

        public func run() throws {
            let operations = try rootOptions.operations(global)
            try operations.exitMaintenance(host, timeout: timeout) { () throws(ProvisionError) in try operations.resumeLocalDaemons() }
            print("\(host) is out of maintenance")
        }
    }

    public struct Watch: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "watch",
            abstract: "On each node (the aquarium-maintenance service): stop and start this node's daemons as the cluster asks.",
            discussion: """
                Examples:
                  aquarium-provision maintenance watch          # what the service runs
                  aquarium-provision maintenance watch --once --verbose
                """)

        @OptionGroup public var global: GlobalOptions
        @OptionGroup public var rootOptions: RootOptions
        @Option(name: .long, help: "Seconds between looks.") public var interval: Double = 5
        @Flag(name: .long, help: "Look once and exit.") public var once = false

        /// Seconds between looks for an MDS that waits for a dead NFS server's session.
        static let nfsInterval: Double = 30

        public init() {}

        public func run() throws {
            let logger = global.logger("aquarium.provision")
            var reported = ""
            var nfsLook = Date.distantPast
            while true {
                do throws(ProvisionError) {
                    // A node not provisioned yet has nothing to watch.
                    let operations = try Operations(root: rootOptions.root, cluster: rootOptions.cluster, logger: logger,
                                                    say: operatorLine)
                    // An MDS waiting for the session of an NFS server that died (every 30 s: `ceph fs dump` is a process).
                    if Date().timeIntervalSince(nfsLook) >= Self.nfsInterval {
                        nfsLook = Date()
                        if let released = operations.releaseKeptNFSSessions() { logger.notice("\(released)") }
                        if let restarted = operations.keepFloatingNFSServer() { logger.notice("\(restarted)") }
                    }
                    if let done = try operations.syncOnce() { logger.notice("\(done)") }
                    reported = ""
                } catch {
                    if error.description != reported { logger.warning("\(error.description)") }
                    reported = error.description
                    if once { throw error }
                }
                if once { return }
                usleep(useconds_t(max(interval, 0.5) * 1_000_000))
            }
        }
    }
}

public struct RebootCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "reboot",
        abstract: "Reboot this node safely: maintenance (checked), daemons stopped, reboot; the next boot ends the maintenance.",
        discussion: """
            Refused (exit 3) when the cluster could not do without this node now (see `maintenance enter`).

            Example:
              aquarium-provision reboot
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions
    @Flag(name: .long, help: "Stop after the daemons are stopped, do not reboot (the machine is restarted some other way).")
    public var noReboot = false

    public init() {}

    public func run() throws {
        let operations = try rootOptions.operations(global)
        try operations.enterMaintenance(operations.localHost, reason: "reboot", timeout: 0)
        if noReboot {
            print("\(operations.localHost): daemons stopped; the next `aquarium-provision run` (the boot's) ends the maintenance")
            return
        }
        print("\(operations.localHost): rebooting")
        try Command("systemctl", ["reboot"]).run()
    }
}

public struct NodeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Remove a node from the cluster.",
        discussion: """
            Examples:
              aquarium-provision status                 # the cluster, before
              aquarium-provision node remove node-4     # on a monitor, not node-4
              aquarium-provision events                 # what happened
            """,
        subcommands: [Remove.self])

    public init() {}

    public struct Remove: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Move HOST's data to the other hosts, then purge its OSDs and remove its monitor, manager and CRUSH host.",
            discussion: """
                Refused (exit 3) when the monitors would lose their quorum or a pool could not keep min_size copies on \
                the remaining hosts. Pools with more copies than hosts remain are lowered to the number of hosts (never \
                below min_size). Runs on a monitor node other than HOST.

                Example:
                  aquarium-provision node remove node-4
                """)

        @OptionGroup public var global: GlobalOptions
        @OptionGroup public var rootOptions: RootOptions
        @Argument(help: "The host to remove.") public var host: String
        @Option(name: .long, help: "Seconds to wait for the data to move and for HOST's daemons to stop.")
        public var timeout: Double = 3600

        public init() {}

        public func run() throws {
            let operations = try rootOptions.operations(global)
            try operations.removeNode(host, timeout: timeout)
            print("\(host) is removed from the cluster")
        }
    }
}
