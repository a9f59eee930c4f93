import Foundation
import Yams

/// A YAML reader that diagnoses as it reads: it walks a composed document node by node, reads mappings with a fixed
/// set of keys (unknown keys get a "did you mean" suggestion, duplicates and missing required keys are named), scalars
/// as text, booleans, integers in a range, enumerations and lists, and collects every problem as a `SeedIssue` with the
/// line and column of the original text and the key path (`network.interfaces[1].gateway`). A schema subclasses it
/// (`SeedReader` is the seed file v1); the reader itself knows no schema's fields.
class DiagnosingReader {
    let file: String
    let document: SeedLoader.Document
    /// What the documents are called in messages ("seed files").
    let documentKind: String
    private(set) var issues: [SeedIssue] = []
    private var seenPlaceholders: Set<String> = []

    init(file: String, document: SeedLoader.Document, documentKind: String) {
        self.file = file
        self.document = document
        self.documentKind = documentKind
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
            report(node.mark, path, "aliases (*name) are not supported in \(documentKind); write the value out")
            return false
        }
        if node.anchor != nil {
            report(node.mark, path, "anchors and aliases (&name, *name) are not supported in \(documentKind); write the value out")
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
            report(node.mark, path, "explicit YAML tags (!tag) are not supported in \(documentKind)")
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
}
