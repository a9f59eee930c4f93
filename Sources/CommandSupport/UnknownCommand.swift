import ArgumentParser

/// A mistyped subcommand (`aquarium-image falsh`): the message names the closest one, as git does, instead of
/// ArgumentParser's "Unexpected argument".
public enum UnknownCommand {
    /// The message for the first word of `arguments` that should name a subcommand and names none; nil when every
    /// subcommand word is known (or the command there takes positional arguments, so the word may be one).
    public static func message(_ arguments: [String], root: any ParsableCommand.Type) -> String? {
        var command = root
        var path = [name(of: root)]
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !word.hasPrefix("-"), word != "help", !subcommands.isEmpty, command.configuration.defaultSubcommand == nil
            else { return nil }
            if let next = subcommands.first(where: { names(of: $0).contains(word) }) {
                command = next
                path.append(name(of: next))
                continue
            }
            let candidates = subcommands.map(name(of:))
            let typed = word.lowercased()
            let close: [(name: String, edits: Int)] = candidates.map { (name: $0, edits: distance(typed, $0)) }
                .filter { $0.edits <= max(2, $0.name.count / 3) }
            let best = close.min { $0.edits < $1.edits || ($0.edits == $1.edits && $0.name < $1.name) }
            var text = "Error: '\(word)' is not a command of \(path.joined(separator: " "))"
            if let best {
                text += "; did you mean '\(best.name)'?\n  \(path.joined(separator: " ")) \(best.name) ..."
            } else {
                text += "; it has: \(candidates.joined(separator: ", "))"
            }
            return text + "\n  See '\(path.joined(separator: " ")) --help'."
        }
        return nil
    }

    static func name(of command: any ParsableCommand.Type) -> String {
        command.configuration.commandName ?? command._commandName
    }

    static func names(of command: any ParsableCommand.Type) -> [String] {
        [name(of: command)] + command.configuration.aliases
    }

    /// Levenshtein distance, with a swap of two neighbouring letters counted as one edit (`falsh` → `flash`).
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}
