import Exec
import Foundation
import Seed

/// The `host` and `identity` steps: the node's files and the cluster identity it keeps.
extension Provisioner {
    func host() throws(ProvisionError) -> StepOutcome {
        let changed = try HostConfigurator(layout: layout, seed: seed).apply()
        var detail = changed.isEmpty ? [] : ["wrote " + changed.joined(separator: ", ")]
        if layout.root.isEmpty && options.launcher == .systemd {
            // On the node itself the running system follows the files now, not at the next boot: the monitor binds to
            // the seed's static address in the next steps.
            if changed.contains(where: { $0.hasPrefix("/etc/systemd/network/") }) {
                if (try? Command("networkctl", ["reload"]).run()) != nil {
                    detail.append("reloaded systemd-networkd")
                } else {
                    logger.warning("networkctl reload failed: the new network configuration applies at the next boot")
                }
            }
            if RunningHost.name() != seed.host.hostname, RunningHost.set(seed.host.hostname) {
                detail.append("set the running host name")
            }
        }
        return StepOutcome(changed: !changed.isEmpty, detail: detail.isEmpty ? nil : detail.joined(separator: "; "))
    }

    func makeIdentity() throws(ProvisionError) -> StepOutcome {
        var decided = false
        if state.identity == nil {
            let node = try decideNodeAddress(for: "the monitor")
            state.identity = ClusterIdentity(fsid: existingFSID() ?? UUID().uuidString.lowercased(), name: seed.cluster.name,
                                             daemonId: daemonId, address: node.address, basePort: node.basePort,
                                             publicNetwork: node.publicNetwork, clusterNetwork: node.clusterNetwork,
                                             launcher: options.launcher)
            try saveState()
            decided = true
        }
        let conf = CephConfig.render(identity, layout: layout, rgwPort: seed.cluster.services.rgw?.port)
        let written = try Files.write(conf, to: layout.cephConf)
        try Files.makeDirectory(layout.cephLog)
        try Files.makeDirectory(layout.cephRun)
        try Files.makeDirectory(layout.crashDir)
        return StepOutcome(changed: decided || written,
                          detail: "fsid \(identity.fsid), mon \(identity.monAddressVector)")
    }

    /// Where this node's daemons bind: 127.0.0.1 in a free port range (process launcher), else the node's address in
    /// the seed's public network. `who` names what needs the address, for the message.
    func decideNodeAddress(for who: String) throws(ProvisionError)
        -> (address: IPAddress, publicNetwork: String, clusterNetwork: String, basePort: Int) {
        switch options.launcher {
        case .process:
            guard let port = options.basePort ?? Ports.findFreeRange() else {
                throw .failed("no range of 100 free ports on 127.0.0.1 found; pass --base-port")
            }
            return (NodeAddresses.loopback, "127.0.0.0/8", "127.0.0.0/8", port)
        case .systemd:
            guard let network = seed.network.publicNetwork else {
                throw .invalidInput("the seed has no network.public_network; \(who) needs an address in it")
            }
            guard let own = NodeAddresses.find(in: network, seed: seed) else {
                throw .failed("this node has no address in the public network \(network); check the seed's "
                    + "network.interfaces and that the links are up")
            }
            if layout.root.isEmpty, !NodeAddresses.local().contains(own) {
                // A static address of the seed that systemd-networkd is still configuring (the host step reloaded it).
                do {
                    try CephTools.wait("the seed's address \(own) to be configured", seconds: 90) {
                        NodeAddresses.local().contains(own)
                    }
                } catch {
                    throw .failed("the seed's address \(own) (network.interfaces) is on no interface of this node after "
                        + "90 s; check the interface's name or mac in the seed against `ip -br link`, and that its link is up")
                }
            }
            return (own, network.description, seed.network.clusterNetwork?.description ?? network.description,
                    options.basePort ?? 3300)
        }
    }

    /// An fsid already on the node (a configuration file from an earlier run whose state file was lost).
    func existingFSID() -> String? {
        guard let text = Files.read(layout.cephConf) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == "fsid", UUID(uuidString: parts[1]) != nil { return parts[1] }
        }
        return nil
    }
}

/// The running system's host name (the kernel's), as opposed to /etc/hostname.
enum RunningHost {
    static func name() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func set(_ name: String) -> Bool {
        name.withCString { sethostname($0, strlen($0)) } == 0
    }
}
