import Foundation
import Yams

/// A path into the document for messages: `network.interfaces[1].gateway`.
struct KeyPath: CustomStringConvertible {
    enum Component {
        case key(String)
        case index(Int)
    }

    var components: [Component] = []

    func key(_ name: String) -> KeyPath { KeyPath(components: components + [.key(name)]) }
    func index(_ index: Int) -> KeyPath { KeyPath(components: components + [.index(index)]) }

    var description: String {
        var out = ""
        for component in components {
            switch component {
            case .key(let name):
                if !out.isEmpty { out += "." }
                out += SeedSyntax.printable(name)
            case .index(let index):
                out += "[\(index)]"
            }
        }
        return out
    }
}

/// How a scalar reads under the YAML 1.2 core schema (what editors and the JSON Schema see).
enum ScalarValue {
    case null
    case bool(Bool)
    case int(String)
    case float(String)
    case string(String)

    init(plain text: String) {
        switch text {
        case "", "~", "null", "Null", "NULL": self = .null
        case "true", "True", "TRUE": self = .bool(true)
        case "false", "False", "FALSE": self = .bool(false)
        default:
            if ScalarValue.isInteger(text) {
                self = .int(text)
            } else if ScalarValue.isFloat(text) {
                self = .float(text)
            } else {
                self = .string(text)
            }
        }
    }

    static func isInteger(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        if text.hasPrefix("0o") { return text.utf8.count > 2 && text.utf8.dropFirst(2).allSatisfy { $0 >= 0x30 && $0 <= 0x37 } }
        if text.hasPrefix("0x") { return text.utf8.count > 2 && text.utf8.dropFirst(2).allSatisfy(SeedSyntax.isHexDigit) }
        if let first = bytes.first, first == 0x2b || first == 0x2d { bytes = bytes.dropFirst() }
        return !bytes.isEmpty && bytes.allSatisfy(SeedSyntax.isDigit)
    }

    static func isFloat(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        if let first = bytes.first, first == 0x2b || first == 0x2d { bytes = bytes.dropFirst() }
        let rest = String(decoding: bytes, as: UTF8.self)
        if [".inf", ".Inf", ".INF"].contains(rest) { return true }
        if [".nan", ".NaN", ".NAN"].contains(text) { return true }
        var index = bytes.startIndex
        var mantissaDigits = 0
        while index < bytes.endIndex, SeedSyntax.isDigit(bytes[index]) { index += 1; mantissaDigits += 1 }
        if index < bytes.endIndex, bytes[index] == 0x2e {
            index += 1
            while index < bytes.endIndex, SeedSyntax.isDigit(bytes[index]) { index += 1; mantissaDigits += 1 }
        }
        guard mantissaDigits > 0 else { return false }
        if index < bytes.endIndex, bytes[index] == 0x65 || bytes[index] == 0x45 {
            index += 1
            if index < bytes.endIndex, bytes[index] == 0x2b || bytes[index] == 0x2d { index += 1 }
            var exponentDigits = 0
            while index < bytes.endIndex, SeedSyntax.isDigit(bytes[index]) { index += 1; exponentDigits += 1 }
            guard exponentDigits > 0 else { return false }
        }
        return index == bytes.endIndex
    }

    /// Tags that Yams may have written into a plain scalar's tag while resolving it (e.g. for duplicate checks).
    static let coreTags: Set<String> = [
        "", "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", "tag:yaml.org,2002:merge",
    ]

    /// nil when the scalar carries an explicit tag other than `!!str`.
    init?(_ scalar: Node.Scalar) {
        let tag = scalar.tag.description
        if tag == "tag:yaml.org,2002:str" {
            self = .string(scalar.string)
        } else if scalar.style == .plain || scalar.style == .any, ScalarValue.coreTags.contains(tag) {
            self = ScalarValue(plain: scalar.string)
        } else {
            return nil
        }
    }

    func describe(secret: Bool) -> String {
        switch self {
        case .null: return "an empty value"
        case .bool(let value): return "the boolean \(value)"
        case .int(let text), .float(let text): return secret ? "a number" : "the number \(text)"
        case .string(let text): return secret ? "text" : "the text '\(SeedSyntax.printable(text))'"
        }
    }
}

/// Walks the composed document, builds the `Seed` and collects every issue on the way.
final class SeedReader {
    let file: String
    let document: SeedLoader.Document
    let options: SeedLoader.Options
    private(set) var issues: [SeedIssue] = []
    private var seenPlaceholders: Set<String> = []

    init(file: String, document: SeedLoader.Document, options: SeedLoader.Options) {
        self.file = file
        self.document = document
        self.options = options
    }

    // MARK: reporting

    func position(_ mark: Mark?) -> (Int, Int) {
        guard let mark else { return (1, 1) }
        return SeedLoader.originalPosition(line: max(mark.line, 1), column: max(mark.column, 1), edits: document.edits)
    }

    func report(_ mark: Mark?, _ path: KeyPath, _ message: String) {
        let (line, column) = position(mark)
        issues.append(SeedIssue(file: file, line: line, column: column, keyPath: path.description, message: message))
    }

    func sortedIssues() -> [SeedIssue] {
        let sorted = issues.enumerated().sorted { lhs, rhs in
            (lhs.element.line, lhs.element.column, lhs.offset) < (rhs.element.line, rhs.element.column, rhs.offset)
        }.map(\.element)
        guard sorted.count > SeedLoader.maximumIssues else { return sorted }
        var kept = Array(sorted.prefix(SeedLoader.maximumIssues))
        let next = sorted[SeedLoader.maximumIssues]
        kept.append(SeedIssue(file: file, line: next.line, column: next.column, keyPath: "",
                              message: "and \(sorted.count - SeedLoader.maximumIssues) more problems not shown"))
        return kept
    }

    /// Duplicate keys in parts of the document that were not read (under an unknown key, say) still count.
    func reportUnseenDuplicates() {
        for (placeholder, duplicate) in document.duplicates where !seenPlaceholders.contains(placeholder) {
            issues.append(SeedIssue(file: file, line: duplicate.line, column: duplicate.column, keyPath: "",
                                    message: "duplicate key '\(SeedSyntax.printable(duplicate.key))'; give every key once"))
        }
    }

    // MARK: node readers

    func describe(_ node: Node, secret: Bool = false) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar): return ScalarValue(scalar)?.describe(secret: secret) ?? "a tagged value"
        }
    }

    /// False (and reported) when the node is or uses an anchor: they make the file harder to read and review.
    func plain(_ node: Node, _ path: KeyPath) -> Bool {
        if case .alias = node {
            report(node.mark, path, "aliases (*name) are not supported in seed files; write the value out")
            return false
        }
        if node.anchor != nil {
            report(node.mark, path, "anchors and aliases (&name, *name) are not supported in seed files; write the value out")
            return false
        }
        return true
    }

    struct Fields {
        let node: Node
        let path: KeyPath
        var entries: [String: (key: Node, value: Node)] = [:]

        subscript(key: String) -> Node? { entries[key]?.value }
        func keyMark(_ key: String) -> Mark? { entries[key]?.key.mark }
    }

    func mapping(_ node: Node, _ path: KeyPath, keys: [String]) -> Fields? {
        guard plain(node, path) else { return nil }
        guard case .mapping(let mapping) = node else {
            report(node.mark, path, "expected a mapping with keys \(keys.joined(separator: ", ")), found \(describe(node))")
            return nil
        }
        var fields = Fields(node: node, path: path)
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                report(keyNode.mark, path, "complex keys are not supported; keys are plain names such as \(keys[0])")
                continue
            }
            let name = keyScalar.string
            if name.hasPrefix(SeedLoader.placeholderPrefix), let duplicate = document.duplicates[name] {
                seenPlaceholders.insert(name)
                let survivor = mapping.first { pair in
                    if case .scalar(let other) = pair.key { return other.string == duplicate.key }
                    return false
                }
                report(survivor?.key.mark ?? keyNode.mark, path.key(duplicate.key),
                       "duplicate key: already given at line \(duplicate.line), column \(duplicate.column); "
                       + "give every key once")
                continue
            }
            guard keys.contains(name) else {
                let hint = Suggestions.closest(to: name, among: keys).map { "; did you mean '\($0)'?" }
                    ?? "; allowed here: \(keys.joined(separator: ", "))"
                report(keyNode.mark, path.key(name), "unknown key\(hint)")
                continue
            }
            if let first = fields.entries[name] {
                let (line, column) = position(first.key.mark)
                report(keyNode.mark, path.key(name),
                       "duplicate key: already given at line \(line), column \(column); give every key once")
                continue
            }
            fields.entries[name] = (keyNode, value)
        }
        return fields
    }

    func isScalar(_ node: Node) -> Bool {
        if case .scalar = node { return true }
        return false
    }

    func required(_ fields: Fields, _ key: String) -> Node? {
        if let node = fields[key] { return node }
        report(fields.node.mark, fields.path.key(key), "required key is missing")
        return nil
    }

    func scalar(_ node: Node, _ path: KeyPath) -> ScalarValue? {
        guard plain(node, path) else { return nil }
        guard case .scalar(let scalar) = node else { return nil }
        guard let value = ScalarValue(scalar) else {
            report(node.mark, path, "explicit YAML tags (!tag) are not supported in seed files")
            return nil
        }
        return value
    }

    func string(_ node: Node, _ path: KeyPath, secret: Bool = false) -> String? {
        guard plain(node, path) else { return nil }
        if case .scalar = node {
            guard let value = scalar(node, path) else { return nil }
            if case .string(let text) = value { return text }
            var message = "expected text, found \(value.describe(secret: secret))"
            switch value {
            case .int, .float, .bool: message += "; put it in quotes if it is meant as text"
            default: break
            }
            report(node.mark, path, message)
            return nil
        }
        report(node.mark, path, "expected text, found \(describe(node, secret: secret))")
        return nil
    }

    /// A string that must pass `problem` (which returns a message or nil).
    func checked(_ node: Node, _ path: KeyPath, secret: Bool = false, _ problem: (String) -> String?) -> String? {
        guard let text = string(node, path, secret: secret) else { return nil }
        if let message = problem(text) {
            report(node.mark, path, message)
            return nil
        }
        return text
    }

    /// A string turned into a value by `parse`, which returns the value or a message.
    func parsed<T>(_ node: Node, _ path: KeyPath, _ parse: (String) -> Result<T, Problem>) -> T? {
        guard let text = string(node, path) else { return nil }
        switch parse(text) {
        case .success(let value): return value
        case .failure(let problem):
            report(node.mark, path, problem.message)
            return nil
        }
    }

    struct Problem: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    func bool(_ node: Node, _ path: KeyPath) -> Bool? {
        guard plain(node, path) else { return nil }
        if case .scalar = node, let value = scalar(node, path) {
            if case .bool(let flag) = value { return flag }
            var message = "expected true or false, found \(value.describe(secret: false))"
            if case .string(let text) = value, ["yes", "no", "on", "off", "y", "n"].contains(text.lowercased()) {
                message += "; write true or false"
            }
            report(node.mark, path, message)
            return nil
        }
        if case .scalar = node { return nil }
        report(node.mark, path, "expected true or false, found \(describe(node))")
        return nil
    }

    func integer(_ node: Node, _ path: KeyPath, range: ClosedRange<Int>, what: String = "a number") -> Int? {
        guard plain(node, path) else { return nil }
        guard case .scalar = node else {
            report(node.mark, path, "expected \(what) from \(range.lowerBound) to \(range.upperBound), found \(describe(node))")
            return nil
        }
        guard let value = scalar(node, path) else { return nil }
        guard case .int(let text) = value, !text.hasPrefix("0x"), !text.hasPrefix("0o") else {
            report(node.mark, path, "expected \(what) from \(range.lowerBound) to \(range.upperBound), "
                   + "found \(value.describe(secret: false))")
            return nil
        }
        guard let number = Int(text), range.contains(number) else {
            report(node.mark, path, "\(text) is out of range: expected \(what) from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return number
    }

    func list(_ node: Node, _ path: KeyPath, of what: String) -> [Node]? {
        guard plain(node, path) else { return nil }
        guard case .sequence(let sequence) = node else {
            report(node.mark, path, "expected a list of \(what), found \(describe(node)); write [value, ...] or "
                   + "one '- value' per line")
            return nil
        }
        return Array(sequence)
    }

    func enumeration<E: RawRepresentable & CaseIterable>(_ node: Node, _ path: KeyPath, _: E.Type) -> E?
        where E.RawValue == String {
        let names = E.allCases.map(\.rawValue).joined(separator: ", ")
        guard plain(node, path) else { return nil }
        guard case .scalar = node, let value = scalar(node, path) else {
            if case .scalar = node { return nil }
            report(node.mark, path, "expected one of \(names), found \(describe(node))")
            return nil
        }
        let text: String
        switch value {
        case .string(let string): text = string
        case .bool(let flag): text = flag ? "true" : "false"
        case .int(let string), .float(let string): text = string
        case .null:
            report(node.mark, path, "expected one of \(names), found an empty value")
            return nil
        }
        if case .string = value, let result = E(rawValue: text) { return result }
        report(node.mark, path, "'\(SeedSyntax.printable(text))' is not one of \(names)")
        return nil
    }

    // MARK: the seed

    static let rootKeys = ["version", "host", "network", "disks", "cluster", "expires"]

    func readSeed() -> Seed? {
        guard let rootNode = document.root else {
            report(nil, KeyPath(), "the file is empty; a seed needs at least version, host and cluster "
                   + "(see `aquarium-image seed example`)")
            return nil
        }
        guard let root = mapping(rootNode, KeyPath(), keys: Self.rootKeys) else { return nil }
        let path = KeyPath()
        if let node = required(root, "version"), case .scalar = node, let value = scalar(node, path.key("version")) {
            switch value {
            case .int("1"): break
            case .int(let text):
                report(node.mark, path.key("version"), "version \(SeedSyntax.printable(text)) is not supported; this "
                       + "parser reads version 1")
            default:
                report(node.mark, path.key("version"), "expected the number 1, found \(value.describe(secret: false))")
            }
        } else if let node = root["version"], !isScalar(node) {
            report(node.mark, path.key("version"), "expected the number 1, found \(describe(node))")
        }
        let host = required(root, "host").map { readHost($0, path.key("host")) }
        let network = root["network"].map { readNetwork($0, path.key("network")) } ?? Seed.Network()
        let disks = root["disks"].map { readDisks($0, path.key("disks")) } ?? Seed.Disks()
        let cluster = required(root, "cluster").map { readCluster($0, path.key("cluster")) }
        let expires: SeedTime? = root["expires"].flatMap { node in
            parsed(node, path.key("expires")) { text in
                SeedTime(rfc3339: text).map { .success($0) }
                    ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not an RFC 3339 time such as "
                                        + "2026-12-31T23:59:59Z (quote it)"))
            }
        }
        guard issues.isEmpty, let host, let cluster else { return nil }
        return Seed(version: 1, host: host, network: network, disks: disks, cluster: cluster, expires: expires)
    }

    // MARK: host

    func readHost(_ node: Node, _ path: KeyPath) -> Seed.Host {
        var host = Seed.Host(hostname: "")
        guard let fields = mapping(node, path, keys: ["hostname", "timezone", "ntp_servers", "users", "machine", "reinstall"])
        else { return host }
        if let node = fields["machine"] { host.machine = readMachine(node, path.key("machine")) }
        if let node = fields["reinstall"] {
            host.reinstall = parsed(node, path.key("reinstall")) { text in
                UUID(uuidString: text).map { .success($0.uuidString.lowercased()) }
                    ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not a node UUID such as "
                                        + "0f8e2c1a-5b7d-4e09-9a3c-2d6f1e8b7c40 (the report or the refusal names it)"))
            }
        }
        if let node = required(fields, "hostname") {
            host.hostname = checked(node, path.key("hostname"), SeedSyntax.hostnameProblem) ?? ""
        }
        if let node = fields["timezone"] {
            host.timezone = checked(node, path.key("timezone")) {
                SeedSyntax.timezoneProblem($0, zoneinfoDirectory: options.zoneinfoDirectory)
            }
        }
        if let node = fields["ntp_servers"], let items = list(node, path.key("ntp_servers"), of: "host names or addresses") {
            host.ntpServers = items.enumerated().compactMap { index, item in
                checked(item, path.key("ntp_servers").index(index), SeedSyntax.hostOrAddressProblem)
            }
        }
        if let node = fields["users"], let items = list(node, path.key("users"), of: "users") {
            var seen: [String: Mark?] = [:]
            for (index, item) in items.enumerated() {
                let itemPath = path.key("users").index(index)
                guard let user = readUser(item, itemPath) else { continue }
                if let firstMark = seen[user.name] {
                    let (line, _) = position(firstMark)
                    report(item.mapping?["name"]?.mark ?? item.mark, itemPath.key("name"),
                           "user '\(user.name)' is already listed at line \(line); list each user once")
                } else {
                    seen[user.name] = item.mapping?["name"]?.mark ?? item.mark
                }
                host.users.append(user)
            }
        }
        return host
    }

    func readMachine(_ node: Node, _ path: KeyPath) -> Seed.Machine? {
        guard let fields = mapping(node, path, keys: ["serial", "mac"]) else { return nil }
        var machine = Seed.Machine()
        if let node = fields["serial"] {
            machine.serial = checked(node, path.key("serial")) { text in
                if text.isEmpty || text.count > 128 || text.contains(where: { $0.isNewline || $0 == "/" }) {
                    return "'\(SeedSyntax.printable(text))' is not a DMI system serial (1 to 128 characters, no '/' "
                        + "or line breaks; `cat /sys/class/dmi/id/product_serial` shows it)"
                }
                return nil
            }
        }
        if let node = fields["mac"] {
            machine.mac = parsed(node, path.key("mac")) { text in
                SeedSyntax.normalizedMAC(text).map { .success($0) }
                    ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not a MAC address such as 52:54:00:12:34:56"))
            }
        }
        if fields["serial"] == nil && fields["mac"] == nil {
            report(node.mark, path, "give serial (the DMI system serial) and/or mac (a NIC's MAC address)")
        }
        return machine
    }

    func readUser(_ node: Node, _ path: KeyPath) -> Seed.User? {
        guard let fields = mapping(node, path, keys: ["name", "password_hash", "ssh_authorized_keys"]) else { return nil }
        var user = Seed.User(name: "")
        var ok = true
        if let node = required(fields, "name"), let name = checked(node, path.key("name"), SeedSyntax.userNameProblem) {
            user.name = name
        } else {
            ok = false
        }
        if let node = fields["password_hash"] {
            user.passwordHash = checked(node, path.key("password_hash"), secret: true, SeedSyntax.passwordHashProblem)
        }
        if let node = fields["ssh_authorized_keys"],
           let items = list(node, path.key("ssh_authorized_keys"), of: "SSH public keys") {
            user.sshAuthorizedKeys = items.enumerated().compactMap { index, item in
                checked(item, path.key("ssh_authorized_keys").index(index), SeedSyntax.sshKeyProblem)
            }
        }
        return ok ? user : nil
    }

    // MARK: network

    func readNetwork(_ node: Node, _ path: KeyPath) -> Seed.Network {
        var network = Seed.Network()
        guard let fields = mapping(node, path, keys: ["interfaces", "nameservers", "public_network", "cluster_network"])
        else { return network }
        if let node = fields["interfaces"], let items = list(node, path.key("interfaces"), of: "interfaces") {
            var selectors: [Seed.InterfaceSelector: Int] = [:]
            var addresses: [IPAddress: Int] = [:]
            for (index, item) in items.enumerated() {
                let itemPath = path.key("interfaces").index(index)
                guard let interface = readInterface(item, itemPath) else { continue }
                if let first = selectors[interface.selector] {
                    let (key, shown): (String, String) = switch interface.selector {
                    case .name(let name): ("name", name)
                    case .mac(let mac): ("mac", mac)
                    }
                    report(item.mapping?[key]?.mark ?? item.mark, itemPath.key(key),
                           "interface '\(shown)' is already configured in network.interfaces[\(first)]")
                } else {
                    selectors[interface.selector] = index
                }
                for address in interface.addresses {
                    if let first = addresses[address.address] {
                        report(item.mapping?["addresses"]?.mark ?? item.mark, itemPath.key("addresses"),
                               "address \(address.address) is already given to network.interfaces[\(first)]")
                    } else {
                        addresses[address.address] = index
                    }
                }
                network.interfaces.append(interface)
            }
        }
        if let node = fields["nameservers"], let items = list(node, path.key("nameservers"), of: "IP addresses") {
            network.nameservers = items.enumerated().compactMap { index, item in
                address(item, path.key("nameservers").index(index))
            }
        }
        if let node = fields["public_network"] { network.publicNetwork = cidr(node, path.key("public_network")) }
        if let node = fields["cluster_network"] { network.clusterNetwork = cidr(node, path.key("cluster_network")) }
        return network
    }

    func address(_ node: Node, _ path: KeyPath) -> IPAddress? {
        parsed(node, path) { text in
            IPAddress(text).map { .success($0) } ?? .failure(Problem(
                "'\(SeedSyntax.printable(text))' is not an IP address such as 10.0.0.1 or fd00::1"))
        }
    }

    func cidr(_ node: Node, _ path: KeyPath) -> IPNetwork? {
        parsed(node, path) { text in
            guard let parsed = InterfaceAddress(text) else {
                return .failure(Problem("'\(SeedSyntax.printable(text))' is not a network in CIDR notation, such as "
                                        + "10.0.0.0/24 or fd00:1::/64"))
            }
            guard parsed.address == parsed.network.address else {
                return .failure(Problem("'\(text)' has host bits set; the network is \(parsed.network)"))
            }
            return .success(parsed.network)
        }
    }

    func readInterface(_ node: Node, _ path: KeyPath) -> Seed.Interface? {
        guard let fields = mapping(node, path, keys: ["name", "mac", "dhcp", "addresses", "gateway", "mtu"]) else {
            return nil
        }
        let before = issues.count
        var selector: Seed.InterfaceSelector?
        switch (fields["name"], fields["mac"]) {
        case (.some, .some):
            report(fields.keyMark("mac"), path.key("mac"), "give either name or mac to select the interface, not both")
        case (.some(let node), nil):
            selector = checked(node, path.key("name"), SeedSyntax.interfaceNameProblem).map { .name($0) }
        case (nil, .some(let node)):
            selector = parsed(node, path.key("mac")) { text in
                SeedSyntax.normalizedMAC(text).map { .success(.mac($0)) }
                    ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not a MAC address such as 52:54:00:12:34:56"))
            }
        case (nil, nil):
            report(node.mark, path.key("name"), "required key is missing: give name (e.g. eno1) or mac to select the interface")
        }
        var interface = Seed.Interface(selector: selector ?? .name(""))
        if let node = fields["dhcp"] { interface.dhcp = bool(node, path.key("dhcp")) ?? false }
        var addressesOK = true
        if let node = fields["addresses"], let items = list(node, path.key("addresses"), of: "addresses with a prefix length") {
            for (index, item) in items.enumerated() {
                let itemPath = path.key("addresses").index(index)
                let parsedAddress: InterfaceAddress? = parsed(item, itemPath) { text in
                    guard let value = InterfaceAddress(text) else {
                        return .failure(Problem("'\(SeedSyntax.printable(text))' is not an address with a prefix "
                                                + "length, such as 10.1.0.11/24 or fd00:1::11/64"))
                    }
                    if value.address.family == .v4, value.prefixLength <= 30 {
                        if value.address == value.network.address {
                            return .failure(Problem("\(value) is the network address of its subnet; give this "
                                                    + "node's own address"))
                        }
                        if value.address == value.address.filled(from: value.prefixLength) {
                            return .failure(Problem("\(value) is the broadcast address of its subnet; give this "
                                                    + "node's own address"))
                        }
                    }
                    return .success(value)
                }
                if let parsedAddress { interface.addresses.append(parsedAddress) } else { addressesOK = false }
            }
        } else if fields["addresses"] != nil {
            addressesOK = false
        }
        if let node = fields["gateway"], let gateway = address(node, path.key("gateway")) {
            interface.gateway = gateway
            if addressesOK {
                let sameFamily = interface.addresses.filter { $0.address.family == gateway.family }
                if interface.addresses.isEmpty {
                    report(node.mark, path.key("gateway"), "a gateway needs a static address on this interface "
                           + "(with dhcp the gateway comes from the DHCP server)")
                } else if sameFamily.contains(where: { $0.address == gateway }) {
                    report(node.mark, path.key("gateway"), "\(gateway) is this interface's own address, not a gateway")
                } else if !sameFamily.contains(where: { $0.network.contains(gateway) }) {
                    let subnets = sameFamily.map { $0.network.description }
                    report(node.mark, path.key("gateway"), subnets.isEmpty
                           ? "\(gateway) has no address of its family on this interface"
                           : "\(gateway) is outside the interface's subnet\(subnets.count > 1 ? "s" : "") "
                             + subnets.joined(separator: ", "))
                }
            }
        }
        if let node = fields["mtu"] {
            interface.mtu = integer(node, path.key("mtu"), range: 68...9216, what: "an MTU")
            if let mtu = interface.mtu, mtu < 1280, interface.addresses.contains(where: { $0.address.family == .v6 }) {
                report(node.mark, path.key("mtu"), "\(mtu) is below 1280, the minimum MTU for IPv6")
            }
        }
        if !interface.dhcp, interface.addresses.isEmpty, addressesOK, issues.count == before {
            report(node.mark, path, "has neither dhcp: true nor addresses; say how the interface gets its address")
        }
        return issues.count == before ? interface : nil
    }

    // MARK: disks

    static let matchKeys = ["by_id", "serial", "wwn", "model", "transport", "rotational", "min_size", "max_size"]

    func readDisks(_ node: Node, _ path: KeyPath) -> Seed.Disks {
        var disks = Seed.Disks()
        guard let fields = mapping(node, path, keys: ["system", "storage"]) else { return disks }
        if let node = fields["system"] {
            let systemPath = path.key("system")
            if let system = mapping(node, systemPath, keys: ["match", "prefer", "wipe", "filesystem"]) {
                let match = system["match"].flatMap { readMatch($0, systemPath.key("match"), defaultMin: true) }
                    ?? DiskMatch(minSize: Seed.SystemDisk.defaultMinSize)
                disks.system.match = match
                if let node = system["prefer"] {
                    disks.system.prefer = enumeration(node, systemPath.key("prefer"), DiskPreference.self) ?? .smallest
                }
                if let node = system["wipe"] {
                    disks.system.wipe = enumeration(node, systemPath.key("wipe"), WipePolicy.self) ?? .never
                }
                if let node = system["filesystem"] {
                    disks.system.filesystem = enumeration(node, systemPath.key("filesystem"), FilesystemKind.self) ?? .xfs
                }
            }
        }
        if let node = fields["storage"] {
            let storagePath = path.key("storage")
            if let storage = mapping(node, storagePath, keys: ["match", "wipe"]) {
                disks.storage.match = storage["match"].flatMap { readMatch($0, storagePath.key("match"), defaultMin: false) }
                    ?? DiskMatch()
                if let node = storage["wipe"] {
                    disks.storage.wipe = enumeration(node, storagePath.key("wipe"), WipePolicy.self) ?? .never
                }
            }
        }
        return disks
    }

    func size(_ node: Node, _ path: KeyPath) -> UInt64? {
        parsed(node, path) { text in
            SeedSyntax.parseSize(text).mapError { Problem($0.message) }
        }
    }

    func readMatch(_ node: Node, _ path: KeyPath, defaultMin: Bool) -> DiskMatch? {
        guard let fields = mapping(node, path, keys: Self.matchKeys) else { return nil }
        var match = DiskMatch()
        if let node = fields["by_id"] { match.byId = checked(node, path.key("by_id"), SeedSyntax.byIdProblem) }
        if let node = fields["serial"] { match.serial = checked(node, path.key("serial"), SeedSyntax.globProblem) }
        if let node = fields["wwn"] { match.wwn = checked(node, path.key("wwn"), SeedSyntax.wwnProblem) }
        if let node = fields["model"] { match.model = checked(node, path.key("model"), SeedSyntax.globProblem) }
        if let node = fields["transport"], let items = list(node, path.key("transport"), of: "transports") {
            let transports = items.enumerated().compactMap { index, item in
                enumeration(item, path.key("transport").index(index), DiskTransport.self)
            }
            if items.isEmpty {
                report(node.mark, path.key("transport"), "is an empty list, which no disk matches; leave the key out "
                       + "to allow any transport")
            }
            match.transport = transports
        }
        if let node = fields["rotational"] { match.rotational = bool(node, path.key("rotational")) }
        if let node = fields["min_size"] { match.minSize = size(node, path.key("min_size")) }
        if let node = fields["max_size"] { match.maxSize = size(node, path.key("max_size")) }
        if let node = fields["min_size"], fields["max_size"] != nil, let min = match.minSize, let max = match.maxSize,
           min > max {
            report(node.mark, path.key("min_size"), "min_size \(SeedSyntax.describeSize(min)) is larger than "
                   + "max_size \(SeedSyntax.describeSize(max))")
        }
        if defaultMin, match.minSize == nil, fields["min_size"] == nil {
            match.minSize = Seed.SystemDisk.defaultMinSize
            if let max = match.maxSize, max < Seed.SystemDisk.defaultMinSize, let node = fields["max_size"] {
                report(node.mark, path.key("max_size"), "max_size \(SeedSyntax.describeSize(max)) is below the "
                       + "default min_size 10GiB; set min_size as well")
            }
        }
        return match
    }

    // MARK: cluster

    func readCluster(_ node: Node, _ path: KeyPath) -> Seed.Cluster {
        var cluster = Seed.Cluster(role: .bootstrap)
        guard let fields = mapping(node, path, keys: ["name", "role", "join", "services", "telemetry"]) else {
            return cluster
        }
        if let node = fields["name"] {
            cluster.name = checked(node, path.key("name"), SeedSyntax.clusterNameProblem) ?? cluster.name
        }
        let role = required(fields, "role").flatMap { enumeration($0, path.key("role"), ClusterRole.self) }
        if let role { cluster.role = role }
        if let node = fields["join"] {
            if role == .bootstrap {
                report(fields.keyMark("join"), path.key("join"), "is only allowed with role: join (this node has "
                       + "role: bootstrap); remove it, or set role: join")
            }
            cluster.join = readJoin(node, path.key("join"))
        } else if role == .join, let roleNode = fields["role"] {
            report(roleNode.mark, path.key("join"), "role: join needs cluster.join with the address and token of "
                   + "the cluster to join")
        }
        if let node = fields["services"] { cluster.services = readServices(node, path.key("services")) }
        if let node = fields["telemetry"] { cluster.telemetry = bool(node, path.key("telemetry")) ?? false }
        return cluster
    }

    func readJoin(_ node: Node, _ path: KeyPath) -> Seed.Join? {
        guard let fields = mapping(node, path, keys: ["address", "token"]) else { return nil }
        let address = required(fields, "address").flatMap { self.address($0, path.key("address")) }
        let token = required(fields, "token").flatMap {
            checked($0, path.key("token"), secret: true, SeedSyntax.tokenProblem)
        }
        guard let address, let token else { return nil }
        return Seed.Join(address: address, token: token)
    }

    enum ServiceBody {
        case invalid
        /// Given as an empty value (`rgw:`): enabled with its defaults.
        case defaults
        case fields(Fields)
    }

    func serviceBody(_ node: Node, _ path: KeyPath, keys: [String]) -> ServiceBody {
        if case .scalar(let scalar) = node, case .null? = ScalarValue(scalar), node.anchor == nil { return .defaults }
        guard let fields = mapping(node, path, keys: keys) else { return .invalid }
        return .fields(fields)
    }

    func readServices(_ node: Node, _ path: KeyPath) -> Seed.Services {
        var services = Seed.Services()
        guard let fields = mapping(node, path, keys: ["rbd", "rgw", "cephfs"]) else { return services }
        if let node = fields["rbd"] {
            let servicePath = path.key("rbd")
            switch serviceBody(node, servicePath, keys: ["pools"]) {
            case .invalid: break
            case .defaults: services.rbd = Seed.RBD()
            case .fields(let rbd):
                var service = Seed.RBD()
                let itemsPath = servicePath.key("pools")
                if let node = rbd["pools"], let items = list(node, itemsPath, of: "pool names") {
                    if items.isEmpty {
                        report(node.mark, itemsPath, "is empty; name at least one pool, or leave pools out for [rbd]")
                    }
                    var seen: Set<String> = []
                    service.pools = items.enumerated().compactMap { index, item in
                        guard let name = checked(item, itemsPath.index(index), SeedSyntax.poolNameProblem) else {
                            return nil
                        }
                        if !seen.insert(name).inserted {
                            report(item.mark, itemsPath.index(index), "pool '\(name)' is listed twice")
                        }
                        return name
                    }
                }
                services.rbd = service
            }
        }
        if let node = fields["rgw"] {
            let servicePath = path.key("rgw")
            switch serviceBody(node, servicePath, keys: ["port"]) {
            case .invalid: break
            case .defaults: services.rgw = Seed.RGW()
            case .fields(let rgw):
                var service = Seed.RGW()
                if let node = rgw["port"] {
                    service.port = integer(node, servicePath.key("port"), range: 1...65535, what: "a TCP port")
                        ?? Seed.RGW.defaultPort
                }
                services.rgw = service
            }
        }
        if let node = fields["cephfs"] {
            let servicePath = path.key("cephfs")
            switch serviceBody(node, servicePath, keys: ["name"]) {
            case .invalid: break
            case .defaults: services.cephfs = Seed.CephFS()
            case .fields(let cephfs):
                var service = Seed.CephFS()
                if let node = cephfs["name"] {
                    service.name = checked(node, servicePath.key("name"), SeedSyntax.poolNameProblem) ?? service.name
                }
                services.cephfs = service
            }
        }
        return services
    }
}

enum Suggestions {
    /// The allowed key closest to `key`, when it is close enough to be a likely typo.
    static func closest(to key: String, among candidates: [String]) -> String? {
        func normalized(_ text: String) -> String {
            String(text.lowercased().unicodeScalars.filter { $0 != "_" && $0 != "-" && $0 != " " })
        }
        let target = normalized(key)
        if let exact = candidates.first(where: { normalized($0) == target }) { return exact }
        let limit = key.count >= 10 ? 3 : 2
        let scored = candidates.map { ($0, distance(Array(target.unicodeScalars), Array(normalized($0).unicodeScalars))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= limit, best.1 < max(key.count, 1) else {
            return nil
        }
        return best.0
    }

    /// Levenshtein distance, with an early exit for long inputs.
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.count > 64 || b.count > 64 { return Int.max / 2 }
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
