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

// MARK: - the answers as seed text

/// Which disks become storage disks (OSDs).
enum StorageChoice: String, CaseIterable, Sendable {
    case all, hdd, ssd
    case noDisks = "none"

    var label: String {
        switch self {
        case .all: "every other eligible disk"
        case .hdd: "HDDs only"
        case .ssd: "SSDs only"
        case .noDisks: "none (a monitor-only node)"
        }
    }

    /// `disks.storage.match` as a YAML flow mapping; nil: no match, every remaining eligible disk.
    var match: String? {
        switch self {
        case .all: nil
        case .hdd: "{rotational: true}"
        case .ssd: "{rotational: false}"
        // No disk is this small (the inventory lists no disk of size 0): no storage disk.
        case .noDisks: "{max_size: \"1B\"}"
        }
    }
}

/// The answers so far, and the seed text they make. Text values are written as they were typed (quoted), so the
/// parser judges exactly what the operator typed.
struct SeedWizardDraft: Sendable {
    var hostname = ""
    var passwordHash: String?
    var sshKeys: [String] = []
    /// A kernel name, or a MAC address (it has ':').
    var interface: String?
    var dhcp = false
    var address: String?
    var gateway: String?
    var nameservers: [String] = []
    var publicNetwork: String?
    /// `disks.system.match`: serial, wwn or by_id, its value, and a comment naming the disk.
    var systemDisk: (key: String, value: String, comment: String)?
    var storage: StorageChoice?
    var storageWipe: String?
    var role = "bootstrap"
    var joinAddress: String?
    var joinToken: String?

    static func header(file: String) -> [String] {
        let name = (file as NSString).lastPathComponent
        return [
            "Aquarium seed file, version 1: written by `aquarium-image seed new`.",
            "Check it with `aquarium-image seed validate \(name)`;",
            "put it on a stick with `aquarium-image seed inject /dev/sdX \(name)`.",
            "Reference: docs/seed.md.",
        ]
    }

    /// A YAML double-quoted scalar holding `text` exactly.
    static func quoted(_ text: String) -> String { Seed.yamlQuoted(text) }

    func text(header: [String] = []) -> String {
        let q = Self.quoted
        var lines = header.map { "# " + $0 }
        lines.append("version: 1")
        lines.append("")
        lines.append("host:")
        lines.append("  hostname: \(q(hostname))")
        if passwordHash != nil || !sshKeys.isEmpty {
            lines.append("  users:")
            lines.append("    - name: aquarium")
            if let passwordHash { lines.append("      password_hash: \(q(passwordHash))") }
            if !sshKeys.isEmpty {
                lines.append("      ssh_authorized_keys:")
                lines += sshKeys.map { "        - \(q($0))" }
            }
        }
        if storage == StorageChoice.noDisks && role == "bootstrap" {
            lines.append("  requirements:")
            lines.append("    storage_disks: 0                   # no storage disks: other nodes join with them")
        }
        if interface != nil || !nameservers.isEmpty || publicNetwork != nil {
            lines.append("")
            lines.append("network:")
            if let interface {
                lines.append("  interfaces:")
                lines.append(interface.contains(":") ? "    - mac: \(q(interface))" : "    - name: \(q(interface))")
                if dhcp { lines.append("      dhcp: true") }
                if let address { lines.append("      addresses: [\(q(address))]") }
                if let gateway { lines.append("      gateway: \(q(gateway))") }
            }
            if !nameservers.isEmpty { lines.append("  nameservers: [" + nameservers.map(q).joined(separator: ", ") + "]") }
            if let publicNetwork { lines.append("  public_network: \(q(publicNetwork))") }
        }
        let storageLines = [storage?.match.map { "    match: \($0)" + (storage == StorageChoice.noDisks ? "  # none: no disk is this small" : "") },
                            storageWipe.map { "    wipe: \(q($0))" }].compactMap { $0 }
        if systemDisk != nil || !storageLines.isEmpty {
            lines.append("")
            lines.append("disks:")
            if let systemDisk {
                lines.append("  system:")
                lines.append("    match:                             # \(systemDisk.comment)")
                lines.append("      \(systemDisk.key): \(q(systemDisk.value))")
            }
            if !storageLines.isEmpty {
                lines.append("  storage:")
                lines += storageLines
            }
        }
        lines.append("")
        lines.append("cluster:")
        lines.append("  role: \(q(role))")
        if joinAddress != nil || joinToken != nil {
            lines.append("  join:")
            if let joinAddress { lines.append("    address: \(q(joinAddress))") }
            if let joinToken { lines.append("    token: \(q(joinToken))") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The seed these answers make, or every problem with it: the checks of `seed validate`.
    func parsed() -> Result<Seed, SeedValidationError> {
        Result { () throws(SeedValidationError) -> Seed in try SeedLoader.parse(text(), file: "seed") }
    }

    /// The problems of this draft at `paths` or below them (`host.users[0]` covers `host.users[0].name`).
    func problems(at paths: [String]) -> [SeedIssue] {
        guard case .failure(let error) = parsed() else { return [] }
        return error.issues.filter { issue in
            paths.contains { issue.keyPath == $0 || issue.keyPath.hasPrefix($0 + ".") || issue.keyPath.hasPrefix($0 + "[") }
        }
    }
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

// MARK: - the terminal

/// The questions' terminal: prompts to standard output, answers a line at a time from standard input, secrets read
/// with echo off (termios) and kept in bytes that are wiped after use.
struct WizardTerminal: Sendable {
    func say(_ text: String) {
        put(text + "\n")
    }

    /// Straight to the terminal, unbuffered, so a prompt shows before its answer is read.
    func put(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            bytes = bytes.dropFirst(written)
        }
    }

    /// `question [shown]: `, then the answer without surrounding spaces ("" for an empty line).
    func ask(_ question: String, shown: String?) throws(SeedWizardStop) -> String {
        put(question + (shown.map { " [\($0)]" } ?? "") + ": ")
        return String(decoding: try readLine(), as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    /// The same with echo off; the answer's bytes, for the caller to wipe.
    func askSecret(_ question: String, shown: String?) throws(SeedWizardStop) -> [UInt8] {
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return try ask(question, shown: shown).utf8.map { $0 } }
        EchoRestore.saved = saved
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        quiet.c_lflag |= tcflag_t(ECHONL)
        // Interrupted while echo is off: the terminal gets its echo back before the process ends.
        let handler: @convention(c) (Int32) -> Void = { number in
            var saved = EchoRestore.saved
            tcsetattr(STDIN_FILENO, TCSANOW, &saved)
            _ = write(STDOUT_FILENO, "\n", 1)
            _exit(128 + number)
        }
        let previous = [SIGINT, SIGTERM, SIGHUP].map { ($0, signal($0, handler)) }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(STDIN_FILENO, TCSANOW, &saved)
            for (number, old) in previous { signal(number, old) }
        }
        put(question + (shown.map { " [\($0)]" } ?? "") + ": ")
        var line = try readLine()
        defer { Self.wipe(&line) }
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        guard let first = line.firstIndex(where: { !blank($0) }), let last = line.lastIndex(where: { !blank($0) }) else {
            return []
        }
        return Array(line[first...last])
    }

    /// One line from standard input, without its line end; read a byte at a time so nothing is buffered.
    func readLine() throws(SeedWizardStop) -> [UInt8] {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(STDIN_FILENO, &byte, 1)
            if count == 1 {
                if byte == 0x0a { break }
                line.append(byte)
            } else if count < 0 && errno == EINTR {
                continue
            } else if line.isEmpty {
                say("")
                throw SeedWizardStop.endOfInput
            } else {
                break
            }
        }
        byte = 0
        if line.last == 0x0d { line.removeLast() }
        return line
    }

    /// Overwrites a secret's bytes before they are released.
    static func wipe(_ bytes: inout [UInt8]) {
        for index in bytes.indices { bytes[index] = 0 }
    }
}

/// The terminal settings a signal handler puts back (a handler cannot capture context).
private enum EchoRestore {
    nonisolated(unsafe) static var saved = termios()
}

// MARK: - password hashing

/// crypt(3) yescrypt from the system's libxcrypt (`libcrypt.so.1`), loaded when a password is hashed: a fresh salt
/// from `crypt_gensalt_ra("$y$", 0, NULL, 0)` (the library's default cost, its own random bytes), then `crypt_r`.
enum Yescrypt {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private typealias GensaltRA = @convention(c) (UnsafePointer<CChar>?, UInt, UnsafePointer<CChar>?, Int32)
        -> UnsafeMutablePointer<CChar>?
    private typealias CryptR = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?)
        -> UnsafeMutablePointer<CChar>?
    private typealias Crypt = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> UnsafeMutablePointer<CChar>?

    /// More than libxcrypt's `sizeof(struct crypt_data)` (32768 bytes), zeroed as crypt_r wants it the first time.
    private static let cryptDataSize = 65536

    static func hash(_ password: [UInt8]) throws(Failure) -> String {
        guard let library = dlopen("libcrypt.so.1", RTLD_NOW | RTLD_LOCAL) else {
            throw Failure(description: "cannot hash the password here: libcrypt.so.1 (Debian's libcrypt1) is not "
                + "installed; leave the password empty or install it")
        }
        defer { dlclose(library) }
        guard let gensalt = dlsym(library, "crypt_gensalt_ra").map({ unsafeBitCast($0, to: GensaltRA.self) }) else {
            throw Failure(description: "cannot hash the password here: libcrypt.so.1 has no crypt_gensalt_ra")
        }
        guard let setting = gensalt("$y$", 0, nil, 0) else {
            throw Failure(description: "cannot make a yescrypt salt: \(String(cString: strerror(errno)))")
        }
        defer { free(setting) }
        var phrase = password.map { CChar(bitPattern: $0) } + [0]
        defer { for index in phrase.indices { phrase[index] = 0 } }
        let data = UnsafeMutableRawPointer.allocate(byteCount: cryptDataSize, alignment: 16)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: cryptDataSize)
        defer {
            // The library keeps a copy of the password in its work area.
            data.initializeMemory(as: UInt8.self, repeating: 0, count: cryptDataSize)
            data.deallocate()
        }
        let result: UnsafeMutablePointer<CChar>?
        if let cryptR = dlsym(library, "crypt_r").map({ unsafeBitCast($0, to: CryptR.self) }) {
            result = cryptR(phrase, setting, data)
        } else if let crypt = dlsym(library, "crypt").map({ unsafeBitCast($0, to: Crypt.self) }) {
            result = crypt(phrase, setting)
        } else {
            throw Failure(description: "cannot hash the password here: libcrypt.so.1 has neither crypt_r nor crypt")
        }
        // Failure is NULL or a string starting with '*' (never a valid hash).
        let hash = result.map { String(cString: $0) } ?? ""
        guard hash.hasPrefix("$y$") else {
            throw Failure(description: "the password could not be hashed with yescrypt (at most 512 bytes); try another")
        }
        return hash
    }
}
