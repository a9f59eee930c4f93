import Foundation
import Testing
import TestSupport

/// Every command's `--help` shows examples an operator can copy, groups and root commands in workflow order: an
/// `Examples:` (or `Example:`) section whose lines are indented two spaces, at least one of them running the tool
/// itself, none so long that help's 80 columns wrap it. Read from `--experimental-dump-help`, so a command added
/// without examples fails here.
@Suite("every command's help has examples")
struct HelpExamplesTests {
    static let tools = ["aquarium-image", "aquarium-firstboot", "aquarium-provision"]

    /// The part of `--experimental-dump-help` this test reads.
    struct DumpedCommand: Decodable {
        var commandName: String
        var discussion: String?
        var subcommands: [DumpedCommand]?
    }

    struct Dump: Decodable {
        var command: DumpedCommand
    }

    /// Every command of `tool`'s tree with its path ("aquarium-image seed validate"), without ArgumentParser's `help`.
    static func commands(of tool: String) throws -> [(path: String, command: DumpedCommand)] {
        let result = try Products.run(tool, ["--experimental-dump-help"])
        guard result.status == 0 else {
            throw DumpFailed(tool: tool, status: result.status, errorOutput: result.errorOutput)
        }
        let dump = try JSONDecoder().decode(Dump.self, from: result.standardOutput)
        return walk(dump.command, path: [])
    }

    static func walk(_ command: DumpedCommand, path: [String]) -> [(path: String, command: DumpedCommand)] {
        guard command.commandName != "help" else { return [] }
        let here = path + [command.commandName]
        return [(here.joined(separator: " "), command)] + (command.subcommands ?? []).flatMap { walk($0, path: here) }
    }

    /// The lines after the discussion's `Examples:` or `Example:` line that are indented two spaces; nil without one.
    static func exampleLines(_ discussion: String?) -> [String]? {
        let lines = (discussion ?? "").components(separatedBy: "\n")
        guard let heading = lines.firstIndex(where: { $0 == "Examples:" || $0 == "Example:" }) else { return nil }
        return Array(lines[(heading + 1)...].prefix { $0.hasPrefix("  ") })
    }

    struct DumpFailed: Error, CustomStringConvertible {
        var tool: String
        var status: Int32
        var errorOutput: String

        var description: String { "\(tool) --experimental-dump-help exited \(status): \(errorOutput)" }
    }

    @Test("every command and group has an Examples section that runs the tool", arguments: tools)
    func everyCommandHasExamples(tool: String) throws {
        let commands = try Self.commands(of: tool)
        #expect(commands.count > 1, "\(tool): no subcommands in the dump")
        for (path, command) in commands {
            let lines = Self.exampleLines(command.discussion)
            #expect(lines != nil, "\(path): the discussion has no `Examples:` or `Example:` line")
            #expect(lines?.contains { $0.hasPrefix("  \(tool) ") } == true,
                    "\(path): no example line `  \(tool) ...` after the Examples heading: \(command.discussion ?? "")")
        }
    }

    @Test("no example line is wider than help's columns allow", arguments: tools)
    func exampleLinesFit(tool: String) throws {
        for (path, command) in try Self.commands(of: tool) {
            for line in Self.exampleLines(command.discussion) ?? [] {
                #expect(line.count <= 78, "\(path): an example line of \(line.count) characters (at most 78): \(line)")
            }
        }
    }
}
