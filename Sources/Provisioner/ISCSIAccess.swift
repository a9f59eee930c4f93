import Foundation
import Seed

/// Who may log in to the iSCSI target and what each initiator sees, as data: the requests to rbd-target-api that take
/// the target from what its configuration says now to what the seed asks, in an order that never exposes a LUN.
///
/// Two modes, as ceph-iscsi has them. Without `clients`: every initiator with the target's CHAP credentials (and,
/// with `mutual_chap`, checking the target's) sees every disk. With `clients`: per-initiator ACLs, each initiator
/// with CHAP credentials of its own and its own disks. LIO lets an initiator in without CHAP in two moments of a
/// change: a target-wide mode between "ACLs off" and "CHAP set", and an ACL between "made" and "its CHAP set". So
/// the plan maps a LUN only where the credentials that guard it are already in force, and before switching modes it
/// takes the target's LUNs out (giving them their LUN numbers back afterwards): a run killed between two requests
/// leaves at worst a login that sees no disk, never a disk without CHAP.
enum ISCSIAccess {
    /// The credentials a target-wide mode or one initiator logs in with; empty mutual fields: no mutual CHAP.
    struct Auth: Equatable, Sendable {
        var username: String
        var password: String
        var mutualUsername: String = ""
        var mutualPassword: String = ""

        static let none = Auth(username: "", password: "")
        var isSet: Bool { !username.isEmpty && !password.isEmpty }
    }

    /// The part of the target's configuration (rbd-target-api's `/api/config`) that decides access.
    struct Current: Equatable, Sendable {
        var aclEnabled: Bool
        var auth: Auth
        /// Image (`pool/name`) → LUN number, for the LUNs mapped to the target.
        var luns: [String: Int]
        /// Initiator name → its credentials and the images mapped to it.
        var clients: [String: Client]

        struct Client: Equatable, Sendable {
            var auth: Auth
            var images: Set<String>
        }
    }

    /// What the seed and the node's credentials ask for.
    struct Wanted: Equatable, Sendable {
        /// The seed's disks, in LUN order.
        var images: [String]
        /// Target-wide mode: the target's credentials.
        var auth: Auth
        /// ACL mode when not empty: each initiator's credentials and images, in the seed's order.
        var clients: [(iqn: String, auth: Auth, images: [String])]

        static func == (a: Wanted, b: Wanted) -> Bool {
            a.images == b.images && a.auth == b.auth && a.clients.map(\.iqn) == b.clients.map(\.iqn)
                && a.clients.map(\.auth) == b.clients.map(\.auth) && a.clients.map(\.images) == b.clients.map(\.images)
        }
    }

    /// One request to rbd-target-api.
    enum Action: Equatable, Sendable, CustomStringConvertible {
        case unmapTargetLUN(image: String)
        case disableACL
        case enableACL
        case setTargetAuth(Auth)
        case deleteClient(iqn: String)
        case createClient(iqn: String)
        case setClientAuth(iqn: String, Auth)
        case mapTargetLUN(image: String, lun: Int?)
        case mapClientLUN(iqn: String, image: String)
        case unmapClientLUN(iqn: String, image: String)

        /// What the step reports (never a secret).
        var description: String {
            switch self {
            case .unmapTargetLUN(let image): "took \(image) out of the target while its access changes"
            case .disableACL: "turned off per-initiator ACLs"
            case .enableACL: "turned on per-initiator ACLs"
            case .setTargetAuth(let auth):
                auth.isSet ? "set the target's CHAP credentials" + (auth.mutualUsername.isEmpty ? "" : " (mutual)")
                           : "cleared the target's CHAP credentials"
            case .deleteClient(let iqn): "removed initiator \(iqn) (no longer in the seed)"
            case .createClient(let iqn): "allowed initiator \(iqn)"
            case .setClientAuth(let iqn, let auth):
                "set the CHAP credentials of \(iqn)" + (auth.mutualUsername.isEmpty ? "" : " (mutual)")
            case .mapTargetLUN(let image, _): "mapped \(image)"
            case .mapClientLUN(let iqn, let image): "gave \(iqn) \(image)"
            case .unmapClientLUN(let iqn, let image): "took \(image) from \(iqn) (no longer in its disks)"
            }
        }
    }

    /// The requests, in order, from `current` to `wanted`; empty when they agree.
    static func plan(from current: Current, to wanted: Wanted) -> [Action] {
        var actions: [Action] = []
        let aclMode = !wanted.clients.isEmpty
        let wantedNames = Set(wanted.clients.map(\.iqn))
        // Initiators out of the seed lose their ACL first (ceph-iscsi takes no LUN out of a target while an initiator
        // has it, and turns ACLs off only without initiators).
        for iqn in current.clients.keys.sorted() where !wantedNames.contains(iqn) {
            actions.append(.deleteClient(iqn: iqn))
        }
        // A switch of modes passes through a moment where anyone may log in: the target's LUNs go out first and come
        // back with their numbers once the new mode's credentials are in force.
        let switching = aclMode != current.aclEnabled
        let remap = switching ? current.luns : [:]
        let mapped = switching ? [:] : current.luns
        for image in remap.sorted(by: { $0.value < $1.value }).map(\.key) {
            actions.append(.unmapTargetLUN(image: image))
        }
        if aclMode {
            if switching {
                if current.auth != .none { actions.append(.setTargetAuth(.none)) }
                actions.append(.enableACL)
            }
            for client in wanted.clients {
                let existing = switching ? nil : current.clients[client.iqn]
                if existing == nil { actions.append(.createClient(iqn: client.iqn)) }
                if existing?.auth != client.auth { actions.append(.setClientAuth(iqn: client.iqn, client.auth)) }
            }
            actions += targetLUNs(mapped: mapped, wanted: wanted.images, remap: remap)
            for client in wanted.clients {
                let had = switching ? [] : current.clients[client.iqn]?.images ?? []
                for image in client.images where !had.contains(image) {
                    actions.append(.mapClientLUN(iqn: client.iqn, image: image))
                }
                // Only the seed's disks: one taken out of the seed stays as it is, as it does without ACLs.
                for image in had.sorted() where !client.images.contains(image) && wanted.images.contains(image) {
                    actions.append(.unmapClientLUN(iqn: client.iqn, image: image))
                }
            }
        } else {
            if switching { actions.append(.disableACL) }
            if switching || current.auth != wanted.auth { actions.append(.setTargetAuth(wanted.auth)) }
            actions += targetLUNs(mapped: mapped, wanted: wanted.images, remap: remap)
        }
        return actions
    }

    /// The seed's images not mapped yet, with the LUN numbers they had before a switch.
    static func targetLUNs(mapped: [String: Int], wanted: [String], remap: [String: Int]) -> [Action] {
        var actions: [Action] = []
        for image in wanted where mapped[image] == nil {
            actions.append(.mapTargetLUN(image: image, lun: remap[image]))
        }
        // Images mapped before a switch but no longer in the seed go back too: a disk out of the seed keeps its LUN.
        for (image, lun) in remap.sorted(by: { $0.value < $1.value }) where !wanted.contains(image) {
            actions.append(.mapTargetLUN(image: image, lun: lun))
        }
        return actions
    }
}
