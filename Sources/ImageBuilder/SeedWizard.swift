import ArgumentParser
import CommandSupport
import Disks
import FileLayer
import FirstBoot
import Foundation
import JSONCoding
import Seed

// `aquarium-image seed new`: a seed written by answering questions on the terminal (issue "An install wizard in the
// terminal"). The wizard knows no seed rule of its own: every answer goes into the seed text and the text is parsed
// with `SeedLoader`, exactly as `seed validate` does; a problem at the key path of that answer is shown and the
// question asked again. The summary at the end is the redacted seed and, with an inventory, FirstBoot's own plan.

public struct SeedNewCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "new",
        abstract: "Write a seed by answering questions on the terminal; each answer is checked at once.",
        discussion: """
            One question at a time, with its default in brackets (Enter takes it). Every answer is checked with the \
            rules of `seed validate` before the next question. The password is hashed here (yescrypt) and never \
            shown or written in clear. With --inventory (`aquarium-firstboot inventory --json` saved on the node) \
            the disks are listed to choose from, and the summary shows the plan FirstBoot will follow. Nothing is \
            written before the summary is confirmed; the file gets mode 0600. Needs a terminal: for a script, \
            start from `seed example`.

            Examples:
              aquarium-image seed new --output node-01.yaml
              aquarium-image seed new --inventory inv.json --output node-01.yaml
              aquarium-image seed new --inventory inv.json --sign ops
              aquarium-image seed inject /dev/sdX node-01.yaml   # then
            """)

    @OptionGroup public var global: GlobalOptions

    @Option(name: .long, help: "A saved `aquarium-firstboot inventory --json` of the node: pick its disks, see the plan.")
    public var inventory: String?

    @Option(name: [.short, .long], help: "Where to write the seed (default: HOSTNAME.yaml).")
    public var output: String?

    @Option(name: .long, help: "Also sign the seed with this private key from `seed keygen` (writes FILE.sig).")
    public var sign: String?

    public init() {}

    /// What `seed new` says, and exits 2 with, when standard input or output is not a terminal.
    public static let needsTerminal = "seed new asks questions on a terminal; for a script, start from "
        + "'aquarium-image seed example > node.yaml' and check it with 'aquarium-image seed validate'"

    public func run() throws {
        guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
            throw SeedWizardStop(.invalidInput, Self.needsTerminal)
        }
        // Everything that can fail without a question is checked before the first one.
        let document = try inventory.map { path in (path: path, inventory: try Self.readInventory(path)) }
        let privateKey = try sign.map { path in try SeedSignature.readPrivateKey(path: path) }

        let terminal = WizardTerminal()
        var wizard = SeedWizard(terminal: terminal, inventory: document, signing: privateKey != nil)
        try wizard.ask()

        let path = output ?? wizard.draft.hostname + ".yaml"
        let text = wizard.draft.text(header: SeedWizardDraft.header(file: path))
        // Each answer passed on its own; the whole seed must pass too (exit 2 with every problem if not).
        let seed = try SeedLoader.parse(text, file: path)
        terminal.say("")
        terminal.say(wizard.summary(seed))
        let exists = FileManager.default.fileExists(atPath: path)
        let confirm = try terminal.ask("Write \(path)\(exists ? " (replacing the file there)" : "")?", shown: "y/N")
        guard ["y", "yes"].contains(confirm.lowercased()) else {
            terminal.say("Nothing written.")
            return
        }
        try AtomicFile.write(Data(text.utf8), to: path, mode: 0o600)
        terminal.say("Wrote \(path) (mode 0600).")
        if let privateKey {
            let signature = try SeedSigning.sign(file: path, privateKey: privateKey)
            terminal.say("Signed with \(privateKey.publicKey.fingerprint), wrote \(signature).")
        }
        terminal.say("Next step: aquarium-image seed inject /dev/sdX \(path)")
    }

    /// The inventory document at `path`, as `aquarium-firstboot plan --inventory` reads it.
    static func readInventory(_ path: String) throws -> Inventory {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw SeedWizardStop(.invalidInput, "cannot read the inventory: \(FileProblem.describe(error, path: path))")
        }
        do {
            return try InventoryJSON.decode(data)
        } catch {
            throw SeedWizardStop(.invalidInput,
                                 "\(path) is not an inventory document (docs/inventory.md): \(JSONCoding.problem(error))")
        }
    }
}

/// Why `seed new` stopped: no terminal, an unreadable inventory, the end of input.
struct SeedWizardStop: Error, AquariumExitCoded, CustomStringConvertible {
    var exitCode: AquariumExit
    var description: String

    init(_ exitCode: AquariumExit, _ description: String) {
        self.exitCode = exitCode
        self.description = description
    }

    static let endOfInput = SeedWizardStop(.runtimeFailure, "seed new: the input ended before the last question; nothing written")
}

// MARK: - the questions

/// An answer in the wrong form for its question (not a number of the list, not one of the choices), said before the
/// answer reaches the seed.
struct AnswerProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

struct SeedWizard {
    let terminal: WizardTerminal
    let inventory: (path: String, inventory: Inventory)?
    /// `--sign`: a seed that may wipe any disk needs `host.machine` to be signed, which the wizard does not ask.
    let signing: Bool
    var draft = SeedWizardDraft()

    init(terminal: WizardTerminal, inventory: (path: String, inventory: Inventory)?, signing: Bool) {
        self.terminal = terminal
        self.inventory = inventory
        self.signing = signing
    }

    /// Every question, in order.
    mutating func ask() throws {
        terminal.say("A seed for one node: answer each question, or press Enter for the default in brackets.")
        terminal.say("Every answer is checked with the rules of `aquarium-image seed validate` (docs/seed.md).")
        terminal.say("")
        try ask("Host name", default: "node-01", checking: ["host.hostname"]) { draft, answer in draft.hostname = answer }
        try askPassword()
        try askKeys()
        try askNetwork()
        try askDisks()
        try askCluster()
    }

    /// Asks `question` until its answer, put into the draft by `apply`, leaves no problem at `paths`.
    @discardableResult
    mutating func ask(_ question: String, default fallback: String?, shown: String? = nil, checking paths: [String],
                      _ apply: (inout SeedWizardDraft, String) throws(AnswerProblem) -> Void) throws -> String {
        while true {
            let typed = try terminal.ask(question, shown: shown ?? fallback)
            let answer = typed.isEmpty ? (fallback ?? "") : typed
            var candidate = draft
            do {
                try apply(&candidate, answer)
            } catch {
                terminal.say("  " + error.message)
                continue
            }
            let problems = candidate.problems(at: paths)
            if problems.isEmpty {
                draft = candidate
                return answer
            }
            for problem in problems { terminal.say("  \(problem.keyPath): \(problem.message)") }
        }
    }

    mutating func askPassword() throws {
        while true {
            var first = try terminal.askSecret("Password of the user aquarium (not shown)", shown: "none: the account stays locked")
            defer { WizardTerminal.wipe(&first) }
            if first.isEmpty {
                terminal.say("  no password: the account aquarium stays locked (SSH keys only)")
                draft.passwordHash = nil
                return
            }
            var second = try terminal.askSecret("Password again", shown: nil)
            defer { WizardTerminal.wipe(&second) }
            guard first == second else {
                terminal.say("  the two passwords differ; again")
                continue
            }
            var candidate = draft
            do {
                candidate.passwordHash = try Yescrypt.hash(first)
            } catch {
                terminal.say("  \(error)")
                continue
            }
            let problems = candidate.problems(at: ["host.users[0].password_hash"])
            if problems.isEmpty {
                draft = candidate
                terminal.say("  hashed here with yescrypt; only the hash goes into the seed")
                return
            }
            for problem in problems { terminal.say("  \(problem.keyPath): \(problem.message)") }
        }
    }

    mutating func askKeys() throws {
        while true {
            let first = draft.sshKeys.isEmpty
            let answer = try terminal.ask(first ? "SSH public key of aquarium, or a .pub file (empty line ends)"
                                                : "Another SSH key or .pub file (empty line ends)",
                                          shown: first ? "none" : "done")
            if answer.isEmpty { break }
            var keys = [answer]
            var source = ""
            let path = (answer as NSString).expandingTildeInPath
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                do {
                    let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
                    keys = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                        .filter { !$0.isEmpty && !$0.hasPrefix("#") }
                    source = " from \(answer)"
                } catch {
                    terminal.say("  " + FileProblem.describe(error, path: answer))
                    continue
                }
                if keys.isEmpty {
                    terminal.say("  \(answer) holds no key")
                    continue
                }
            }
            for key in keys {
                var candidate = draft
                candidate.sshKeys.append(key)
                let problems = candidate.problems(at: ["host.users[0].ssh_authorized_keys[\(candidate.sshKeys.count - 1)]"])
                if problems.isEmpty {
                    draft = candidate
                    let words = key.split(separator: " ")
                    terminal.say("  added the \(words[0]) key" + (words.count > 2 ? " '\(words[2...].joined(separator: " "))'" : "") + source)
                } else {
                    for problem in problems { terminal.say("  \(problem.keyPath): \(problem.message)") }
                }
            }
        }
        if draft.passwordHash == nil && draft.sshKeys.isEmpty {
            terminal.say("  note: no password and no key: nobody can log in as aquarium")
        }
    }

    mutating func askNetwork() throws {
        let mode = try ask("Network: dhcp or static", default: "dhcp", checking: ["network.interfaces"]) { draft, answer throws(AnswerProblem) in
            switch answer.lowercased() {
            case "dhcp", "d": draft.dhcp = true
            case "static", "s": draft.dhcp = false
            default: throw AnswerProblem("answer dhcp or static")
            }
        }
        try ask("Interface (a name such as eno1, or a MAC address)", default: "eno1",
                checking: ["network.interfaces[0].name", "network.interfaces[0].mac"]) { draft, answer in
            draft.interface = answer
        }
        if ["dhcp", "d"].contains(mode.lowercased()) {
            try ask("Ceph public network (such as 10.0.0.0/24; - for none)", default: nil, shown: "none",
                    checking: ["network.public_network"]) { draft, answer in
                draft.publicNetwork = answer.isEmpty || answer == "-" ? nil : answer
            }
            return
        }
        try ask("Address with its prefix length (such as 10.0.0.11/24)", default: nil,
                checking: ["network.interfaces[0].addresses"]) { draft, answer throws(AnswerProblem) in
            guard !answer.isEmpty else { throw AnswerProblem("a static address is needed, such as 10.0.0.11/24") }
            draft.address = answer
        }
        let address = draft.address.flatMap(InterfaceAddress.init)
        let firstHost = address.flatMap(Self.firstHost)
        try ask("Gateway (- for none)", default: firstHost, shown: firstHost ?? "none",
                checking: ["network.interfaces[0].gateway"]) { draft, answer in
            draft.gateway = answer.isEmpty || answer == "-" ? nil : answer
        }
        let nameserver = draft.gateway
        try ask("Name servers, separated by spaces (- for none)", default: nameserver, shown: nameserver ?? "none",
                checking: ["network.nameservers"]) { draft, answer in
            draft.nameservers = answer == "-" ? [] : answer.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        }
        let subnet = address?.network.description
        try ask("Ceph public network (- for none)", default: subnet, shown: subnet ?? "none",
                checking: ["network.public_network"]) { draft, answer in
            draft.publicNetwork = answer.isEmpty || answer == "-" ? nil : answer
        }
    }

    /// The first host address of an IPv4 subnet (`10.0.0.1` in `10.0.0.0/24`), the usual gateway; nil for IPv6.
    static func firstHost(_ address: InterfaceAddress) -> String? {
        guard address.address.family == .v4, address.prefixLength <= 30 else { return nil }
        var bytes = address.network.address.bytes
        bytes[3] += 1
        return IPAddress(networkOrder: bytes)?.description
    }

    mutating func askDisks() throws {
        if let inventory {
            try askSystemDisk(inventory.inventory, from: inventory.path)
        } else {
            terminal.say("Without --inventory FirstBoot chooses the system disk on the node: the smallest eligible disk "
                + "of at least 10GiB, SSDs first (docs/plan.md).")
        }
        terminal.say("Storage disks (OSDs):")
        for (index, choice) in StorageChoice.allCases.enumerated() {
            terminal.say("  \(index + 1)) \(choice.label)" + storageCount(choice))
        }
        try ask("Storage disks (number)", default: "1", checking: ["disks.storage", "host.requirements"]) { draft, answer throws(AnswerProblem) in
            let choices = StorageChoice.allCases
            if let number = Int(answer), (1...choices.count).contains(number) {
                draft.storage = choices[number - 1]
            } else if let choice = StorageChoice(rawValue: answer.lowercased()) {
                draft.storage = choice
            } else {
                throw AnswerProblem("answer with a number from 1 to \(choices.count)")
            }
        }
        guard draft.storage != StorageChoice.noDisks else { return }
        try ask("Wipe storage disks that hold data: never, aquarium (an old OSD) or always", default: "never",
                checking: ["disks.storage.wipe"]) { [signing] draft, answer throws(AnswerProblem) in
            draft.storageWipe = answer
            if signing, case .success(let seed) = draft.parsed(), seed.wipesAnything, seed.host.machine == nil {
                throw AnswerProblem("with --sign, a seed that may wipe any disk must name its machine (host.machine), "
                    + "which this wizard does not ask: answer never or aquarium, or sign later with `seed sign --unbound`")
            }
        }
    }

    /// With an inventory: how many storage disks `choice` gives on that machine, as FirstBoot plans them.
    func storageCount(_ choice: StorageChoice) -> String {
        guard let inventory, choice != StorageChoice.noDisks else { return "" }
        var candidate = draft
        candidate.storage = choice
        guard case .success(let seed) = candidate.parsed() else { return "" }
        let count = SystemDiskPlanner.plan(seed: seed, inventory: inventory.inventory).storageDisks.count
        return " (\(count) disk\(count == 1 ? "" : "s") here)"
    }

    mutating func askSystemDisk(_ inventory: Inventory, from path: String) throws {
        let disks = inventory.disks
        guard !disks.isEmpty else {
            terminal.say("\(path) lists no disk: FirstBoot will choose the system disk on the node.")
            return
        }
        terminal.say("Disks of \(path):")
        let rows = [["#", "path", "size", "type", "model", "serial", "holds"]] + disks.enumerated().map { index, disk in
            var holds = SystemDiskPlanner.describeContent(disk) ?? "empty"
            if disk.isBootMedia { holds += "; boot media" }
            if disk.mounted { holds += "; mounted" }
            let model = [disk.vendor, disk.model].compactMap { $0?.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: " ")
            return ["\(index + 1)", disk.path, SystemDiskPlanner.formatSize(disk.sizeBytes), disk.rotational ? "HDD" : "SSD",
                    model.isEmpty ? "-" : model, disk.serial ?? "-", holds]
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            terminal.say("  " + cells.joined(separator: "  "))
        }
        // The default is the disk FirstBoot would choose itself.
        var suggested = 1
        if case .success(let seed) = draft.parsed(), let chosen = SystemDiskPlanner.plan(seed: seed, inventory: inventory).systemDisk,
           let index = disks.firstIndex(where: { $0.path == chosen.path }) {
            suggested = index + 1
        }
        try ask("System disk (number)", default: "\(suggested)", checking: ["disks.system"]) { draft, answer throws(AnswerProblem) in
            guard let number = Int(answer), (1...disks.count).contains(number) else {
                throw AnswerProblem("answer with a disk number from 1 to \(disks.count)")
            }
            let disk = disks[number - 1]
            let comment = "disk \(number): \(disk.path), \(SystemDiskPlanner.formatSize(disk.sizeBytes)) "
                + (disk.rotational ? "HDD" : "SSD")
            // The disk by a name that stays: its serial (without glob characters), else its WWN, else a by-id link.
            if let serial = disk.serial, !serial.isEmpty, !serial.contains(where: { "*?[]\\".contains($0) }) {
                draft.systemDisk = ("serial", serial, comment)
            } else if let wwn = disk.wwn, !wwn.isEmpty {
                draft.systemDisk = ("wwn", wwn, comment)
            } else if let link = disk.byId.sorted().first {
                draft.systemDisk = ("by_id", link, comment)
            } else {
                throw AnswerProblem("disk \(number) (\(disk.path)) has no serial, WWN or by-id link the node could find it "
                    + "by; choose another")
            }
        }
        // Said now rather than at the end: why FirstBoot would not take it as it is.
        if case .success(let seed) = draft.parsed() {
            let plan = SystemDiskPlanner.plan(seed: seed, inventory: inventory)
            if plan.systemDisk == nil, let rejected = plan.rejected.first(where: { disk in
                disks.contains { $0.path == disk.path && SeedWizard.names(draft.systemDisk, $0) }
            }) {
                terminal.say("  note: FirstBoot would not use \(rejected.path) now: " + rejected.reasons.joined(separator: "; "))
            }
        }
    }

    static func names(_ system: (key: String, value: String, comment: String)?, _ disk: Disk) -> Bool {
        guard let system else { return false }
        switch system.key {
        case "serial": return disk.serial == system.value
        case "wwn": return disk.wwn == system.value
        default: return disk.byId.contains(system.value)
        }
    }

    mutating func askCluster() throws {
        try ask("Cluster role: bootstrap (a new cluster) or join (an existing one)", default: "bootstrap",
                checking: ["cluster.role"]) { draft, answer throws(AnswerProblem) in
            if ["monitor", "storage"].contains(answer) {
                throw AnswerProblem("the nodes of a rack (monitor, storage) are made together by `aquarium-image rack seeds` "
                    + "(docs/rack.md); answer bootstrap or join")
            }
            draft.role = answer
        }
        guard draft.role == "join" else { return }
        try ask("Address of a monitor of the cluster (the bootstrap node's)", default: nil,
                checking: ["cluster.join.address"]) { draft, answer throws(AnswerProblem) in
            guard !answer.isEmpty else { throw AnswerProblem("an IP address is needed, such as 10.0.0.11") }
            draft.joinAddress = answer
        }
        while true {
            let token = try terminal.askSecret("Join token (not shown; `aquarium-provision join-token` on the bootstrap node)",
                                               shown: nil)
            var candidate = draft
            candidate.joinToken = String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            let problems = candidate.problems(at: ["cluster.join.token"])
            if problems.isEmpty {
                draft = candidate
                return
            }
            for problem in problems { terminal.say("  \(problem.keyPath): \(problem.message)") }
        }
    }

    /// The pre-bootstrap summary: the seed with its secrets redacted and, with an inventory, the plan FirstBoot
    /// will follow on that machine (its requirement lines included).
    func summary(_ seed: Seed) -> String {
        var lines = ["Summary", "=======", "", "The seed (secrets redacted):", ""]
        lines += seed.redacted().yamlText().split(separator: "\n").map { "  " + $0 }
        lines.append("")
        if let inventory {
            lines.append("The plan FirstBoot will follow on the machine of \(inventory.path):")
            lines.append("")
            let plan = SystemDiskPlanner.plan(seed: seed, inventory: inventory.inventory)
            lines += SystemDiskPlanner.render(plan).split(separator: "\n").map { "  " + $0 }
            if plan.isRefused {
                lines.append("")
                lines.append("  FirstBoot would stop on this machine (exit 3) before touching a disk: \(plan.refusal ?? "no system disk").")
            }
        } else {
            lines.append("No --inventory: see the plan on the node with `aquarium-firstboot plan --seed FILE`, or here "
                + "with a saved `aquarium-firstboot inventory --json` and `seed new --inventory`.")
        }
        lines.append("")
        return seed.redact(lines.joined(separator: "\n"))
    }
}
