import Exec
import Foundation
import NodeContract
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
                if RunningHost.reloadNetwork() {
                    detail.append("reloaded systemd-networkd")
                } else {
                    logger.warning("networkctl reload failed: the new network configuration applies at the next boot")
                }
            }
            if changed.contains(where: { $0.hasPrefix("/etc/chrony/") }) {
                // chrony reads its sources and whom it serves at start.
                if RunningHost.restart("chrony.service") {
                    detail.append("restarted chrony")
                } else {
                    logger.warning("chrony did not restart: its new time sources apply at the next boot")
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
        let conf = CephConfig.render(identity, layout: layout, rgwPort: seed.cluster.services.rgw?.port,
                                     rgwHTTPSPort: seed.cluster.services.rgw?.https?.port,
                                     dashboard: seed.cluster.services.dashboard != nil,
                                     learned: LearnedMonitors.load(layout))
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
        if options.launcher == .process && !options.seedNetwork {
            guard let port = options.basePort ?? Ports.findFreeRange() else {
                throw .failed("no range of 100 free ports on 127.0.0.1 found; pass --base-port")
            }
            return (NodeAddresses.loopback, ClusterIdentity.loopbackNetwork, ClusterIdentity.loopbackNetwork, port)
        }
        guard let network = seed.network.publicNetwork else {
            throw .invalidInput("the seed has no network.public_network; \(who) needs an address in it")
        }
        let own = try waitForAddress(in: network)
        return (own, network.description, seed.network.clusterNetwork?.description ?? network.description,
                options.basePort ?? 3300)
    }

    /// This node's address in the public network: the seed's static one there, else one an interface has (DHCP).
    /// Either may come late: systemd-networkd is still applying the seed (the host step reloaded it), a DHCP server is
    /// slow, a switch port forwards only once spanning tree settled. Where the daemons bind here (on the node, or the
    /// process launcher with --seed-network) it waits up to `options.addressTimeout` seconds, saying what for, and
    /// fails with the reason after that. A test root with the systemd launcher describes another machine: a static
    /// address is taken as it is there, without waiting.
    func waitForAddress(in network: IPNetwork) throws(ProvisionError) -> IPAddress {
        let configured = seed.network.interfaces.flatMap(\.addresses).map(\.address).first(where: network.contains)
        let bindsHere = layout.root.isEmpty || options.seedNetwork
        if let configured, !bindsHere { return configured }
        /// The seed's static address once an interface has it; without one, any local address in the network.
        func present() -> IPAddress? {
            let local = NodeAddresses.local()
            if let configured { return local.contains(configured) ? configured : nil }
            return local.first(where: network.contains)
        }
        if let found = present() { return found }
        let what = configured.map { "the seed's address \($0) (network.interfaces)" }
            ?? "an address in the public network \(network) (from DHCP)"
        logger.notice("waiting up to \(Int(options.addressTimeout)) s for \(what)")
        events.append(ProvisionEvent(event: "address.waiting", detail: what))
        var found: IPAddress?
        do {
            try CephTools.wait(what, seconds: options.addressTimeout) {
                found = present()
                return found != nil
            }
        } catch {
            if configured != nil {
                throw .failed("\(what) is on no interface of this node after \(Int(options.addressTimeout)) s; check the "
                    + "interface's name or mac in the seed against `ip -br link`, and that its link is up")
            }
            throw .failed("this node has no address in the public network \(network) after \(Int(options.addressTimeout)) s; "
                + "check that the DHCP server answers on this link and hands out addresses in it, or give the node a static "
                + "address in the seed's network.interfaces")
        }
        guard let found else { throw .failed("\(what) went away again") }
        return found
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
