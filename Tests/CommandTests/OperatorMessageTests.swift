@testable import CommandSupport
import FileLayer
import Foundation
import JSONCoding
import Logging
import Testing
import TestSupport

/// The exact texts an operator reads when something is wrong (issue: "Messages"): one line for a missing file, a JSON
/// document's problem in JSON terms, the closest command for a mistyped one, test-only options out of `--help`.
@Suite("Operator messages")
struct OperatorMessageTests {
    @Test("a mistyped command names the closest one, or lists them", arguments: [
        (["falsh"], "Error: 'falsh' is not a command of aquarium-image; did you mean 'flash'?\n  aquarium-image flash ...\n  See 'aquarium-image --help'."),
        (["seed", "vaildate", "x.yaml"], "Error: 'vaildate' is not a command of aquarium-image seed; did you mean 'validate'?\n  aquarium-image seed validate ...\n  See 'aquarium-image seed --help'."),
        (["biuld", "--profile", "minimal"], "Error: 'biuld' is not a command of aquarium-image; did you mean 'build'?\n  aquarium-image build ...\n  See 'aquarium-image --help'."),
        (["zzzz"], "Error: 'zzzz' is not a command of aquarium-image; it has: seed, rack, boot, build, assemble, bmap, flash, verify, keys\n  See 'aquarium-image --help'."),
    ])
    func mistypedCommand(arguments: [String], expected: String) throws {
        let result = try Products.run("aquarium-image", arguments)
        #expect(result.status == 2)
        #expect(result.errorOutput == expected + "\n", "\(result.errorOutput)")
    }

    @Test("known commands, `help` and options are left to the parser")
    func knownCommandsPass() throws {
        for arguments in [["help", "flash"], ["seed", "validate", "--help"], ["--version"], ["flash", "--help"]] {
            let result = try Products.run("aquarium-image", arguments)
            #expect(result.status == 0 && !result.errorOutput.contains("is not a command"), "\(arguments): \(result.errorOutput)")
        }
        let provision = try Products.run("aquarium-provision", ["maintenance", "entre", "node-1"])
        #expect(provision.status == 2 && provision.errorOutput.hasPrefix(
            "Error: 'entre' is not a command of aquarium-provision maintenance; did you mean 'enter'?"), "\(provision.errorOutput)")
    }

    @Test("the closest command: edits, a swap of two letters counts once", arguments: [
        ("falsh", "flash", 1), ("flash", "flash", 0), ("vaildate", "validate", 1), ("biuld", "build", 1), ("flsh", "flash", 1),
        ("seed", "keys", 3), ("", "flash", 5),
    ])
    func distance(typed: String, candidate: String, edits: Int) {
        #expect(UnknownCommand.distance(typed, candidate) == edits)
    }

    @Test("a missing seed file: one line naming it")
    func missingSeedFile() throws {
        let result = try Products.run("aquarium-image", ["seed", "validate", "/nonexistent/seed.yaml"])
        #expect(result.status == 2)
        #expect(result.errorOutput == "/nonexistent/seed.yaml:1:1: cannot read the file: no such file\n1 of 1 seed file invalid\n",
                "\(result.errorOutput)")
        #expect(!result.errorOutput.contains("NSCocoaErrorDomain"))
    }

    @Test("Foundation's file errors in a few words", arguments: [
        ("/nonexistent/file", "/nonexistent/file: no such file"),
        ("/proc/self", "/proc/self: is a directory, not a file"),
    ])
    func fileProblem(path: String, expected: String) {
        do {
            _ = try Data(contentsOf: URL(fileURLWithPath: path))
            Issue.record("\(path) was read")
        } catch {
            #expect(FileProblem.describe(error) == expected, "\(error)")
        }
    }

    @Test("a file without permission, an I/O error")
    func permissionDenied() throws {
        // Root reads anything: the errno path is checked through the POSIX error itself.
        let error = NSError(domain: NSCocoaErrorDomain, code: CocoaError.fileReadNoPermission.rawValue,
                            userInfo: [NSFilePathErrorKey: "/etc/shadow"])
        #expect(FileProblem.describe(error) == "/etc/shadow: permission denied")
        let posix = NSError(domain: NSPOSIXErrorDomain, code: Int(EIO))
        #expect(FileProblem.describe(posix, path: "/dev/sdz") == "/dev/sdz: input/output error")
    }

    struct Document: Decodable {
        struct Disk: Decodable {
            var path: String
            var size: UInt64
            var rotational: Bool
        }
        var disks: [Disk]
    }

    @Test("a JSON document's problem in JSON terms", arguments: [
        (#"{"disks": [{"path": "/dev/sda", "size": 1, "rotational": true}, {"path": "/dev/sdb", "rotational": true}]}"#,
         "the key `disks[1].size` is missing"),
        (#"{"disks": [{"path": "/dev/sda", "size": "1TB", "rotational": true}]}"#, "`disks[0].size` must be a number"),
        (#"{"disks": [{"path": 7, "size": 1, "rotational": true}]}"#, "`disks[0].path` must be text (a JSON string)"),
        (#"{"disks": [{"path": "/dev/sda", "size": 1, "rotational": "no"}]}"#, "`disks[0].rotational` must be true or false"),
        (#"{"disks": {}}"#, "`disks` must be an array"),
        (#"{"disks": [{"path": null, "size": 1, "rotational": true}]}"#, "`disks[0].path` is null where text (a JSON string) is needed"),
        (#"[]"#, "the document must be an object"),
        (#"{"disks": [}"#, "not valid JSON"),
    ])
    func jsonProblem(json: String, expected: String) {
        do {
            _ = try JSONDecoder().decode(Document.self, from: Data(json.utf8))
            Issue.record("decoded \(json)")
        } catch {
            let text = JSONCoding.problem(error)
            #expect(text.hasPrefix(expected) && !text.contains("CodingKeys"), "\(text)")
        }
    }

    @Test("a saved inventory that is not one: the file and the key, in JSON terms")
    func badInventoryDocument() throws {
        try withTemporaryDirectory { directory in try badInventoryDocument(in: directory) }
    }

    func badInventoryDocument(in directory: String) throws {
        let seed = directory + "/seed.yaml"
        let example = try Products.run("aquarium-image", ["seed", "example"])
        try example.standardOutput.write(to: URL(fileURLWithPath: seed))
        let inventory = directory + "/inventory.json"
        try Data(#"{"schema_version": 1, "disks": [{"name": "sda"}]}"#.utf8).write(to: URL(fileURLWithPath: inventory))
        let result = try Products.run("aquarium-firstboot", ["plan", "--seed", seed, "--inventory", inventory])
        #expect(result.status == 2)
        #expect(result.errorOutput.contains("\(inventory) is not an inventory document (docs/inventory.md): the key `"),
                "\(result.errorOutput)")
        #expect(!result.errorOutput.contains("CodingKeys"), "\(result.errorOutput)")
        let missing = try Products.run("aquarium-firstboot", ["plan", "--seed", seed, "--inventory", directory + "/none.json"])
        #expect(missing.status == 2)
        #expect(missing.errorOutput.contains("cannot read the inventory: \(directory)/none.json: no such file"), "\(missing.errorOutput)")
    }

    @Test("seed validate --json lists every problem with its place; --effective prints only JSON on standard output")
    func seedValidateJSON() throws {
        try withTemporaryDirectory { directory in
            let good = directory + "/good.yaml"
            let example = try Products.run("aquarium-image", ["seed", "example"])
            try example.standardOutput.write(to: URL(fileURLWithPath: good))
            let bad = directory + "/bad.yaml"
            try Data("version: 1\nhost:\n  hostname: node-01\n  colour: blue\n".utf8).write(to: URL(fileURLWithPath: bad))
            let result = try Products.run("aquarium-image", ["seed", "validate", "--json", good, bad])
            #expect(result.status == 2)
            let report = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any], "\(result.output)")
            #expect(report["valid"] as? Bool == false)
            let files = try #require(report["files"] as? [[String: Any]])
            #expect(files.map { $0["file"] as? String } == [good, bad] && files.map { $0["valid"] as? Bool } == [true, false])
            let problems = try #require(files[1]["problems"] as? [[String: Any]])
            #expect(problems.contains {
                $0["file"] as? String == bad && $0["line"] as? Int == 4 && $0["column"] as? Int == 3
                    && $0["keyPath"] as? String == "host.colour" && ($0["message"] as? String)?.contains("unknown key") == true
            }, "\(problems)")
            #expect(problems.contains { $0["keyPath"] as? String == "cluster" }, "\(problems)")

            let effective = try Products.run("aquarium-image", ["seed", "validate", "--effective", good])
            #expect(effective.status == 0)
            let document = try JSONSerialization.jsonObject(with: effective.standardOutput) as? [String: Any]
            #expect(document?["version"] as? Int == 1 && document?["host"] != nil, "\(effective.output)")
            #expect(effective.errorOutput == "\(good): valid\n")
            let both = try Products.run("aquarium-image", ["seed", "validate", "--effective", good, good + ".none"])
            #expect(both.status == 2 && (try? JSONSerialization.jsonObject(with: both.standardOutput)) is [String: Any],
                    "stdout is one JSON document: \(both.output)")
        }
    }

    @Test("a command that needs a provisioned node says so on a root that is not one", arguments: [["events"], ["bench"]])
    func notProvisioned(command: [String]) throws {
        try withTemporaryDirectory { root in
            let result = try Products.run("aquarium-provision", command + ["--root", root])
            #expect(result.status == 2)
            #expect(result.errorOutput == "\(root)/var/lib/aquarium/provision-state.json names no cluster: this node was not "
                + "provisioned yet (`aquarium-provision run`)\n", "\(result.errorOutput)")
        }
    }

    @Test("options that exist only for tests are not in --help", arguments: [
        ("aquarium-provision", ["run", "--help"], ["--fault-inject", "--base-port", "--seed-network", "--mon-port", "--fault-fail", "--launcher"]),
        ("aquarium-firstboot", ["apply", "--help"], ["--fault-inject"]),
    ])
    func hiddenTestOptions(tool: String, arguments: [String], hidden: [String]) throws {
        let result = try Products.run(tool, arguments)
        #expect(result.status == 0)
        for option in hidden { #expect(!result.output.contains(option), "\(tool) \(arguments): shows \(option)") }
    }
}

/// Log lines: plain on a terminal, `<N>` priority prefixes and no time stamp in the journal, time-stamped in a file.
@Suite("Log lines")
struct LogLinesTests {
    static let time = Date(timeIntervalSince1970: 1_796_000_000.25)

    @Test("each destination's line", arguments: [
        (LogLines.Destination.terminal, Logger.Level.notice, "seed found", "seed found"),
        (.terminal, .warning, "slow disk", "warning: slow disk"),
        (.terminal, .error, "no seed", "error: no seed"),
        (.terminal, .debug, "run sgdisk", "debug: run sgdisk"),
        (.journal, .notice, "seed found", "<5>seed found"),
        (.journal, .warning, "slow disk", "<4>slow disk"),
        (.journal, .error, "two\nlines", "<3>two\n<3>  lines"),
        (.journal, .debug, "run sgdisk", "<7>run sgdisk"),
        (.file, .info, "seed found", "2026-11-30T00:53:20.250Z info aquarium.test: seed found"),
    ])
    func line(destination: LogLines.Destination, level: Logger.Level, message: String, expected: String) {
        #expect(LogLines.line(level: level, message: message, metadata: [:], label: "aquarium.test", destination: destination,
                              time: Self.time) == expected)
    }

    @Test("metadata follows the message as key=value, sorted")
    func metadata() {
        #expect(LogLines.line(level: .notice, message: "wrote", metadata: ["device": "/dev/sdb", "bytes": "512"],
                              label: "x", destination: .terminal, time: Self.time) == "wrote bytes=512 device=/dev/sdb")
    }

    @Test("the destination: JOURNAL_STREAM only when it is standard error itself; a terminal; else a file")
    func destination() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/stderr"
            try #require(FileManager.default.createFile(atPath: path, contents: nil))
            let fd = open(path, O_WRONLY)
            try #require(fd >= 0)
            defer { close(fd) }
            var status = stat()
            try #require(fstat(fd, &status) == 0)
            let stream = "\(status.st_dev):\(status.st_ino)"
            #expect(LogLines.destination(environment: ["JOURNAL_STREAM": stream], descriptor: fd) == .journal)
            #expect(LogLines.destination(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino + 1)"], descriptor: fd) == .file)
            #expect(LogLines.destination(environment: [:], descriptor: fd) == .file)
            // A pseudo-terminal: /dev/ptmx, unlocked (TIOCSPTLCK 0), its number (TIOCGPTN) names the other end.
            let terminal = open("/dev/ptmx", O_RDWR | O_NOCTTY)
            try #require(terminal >= 0)
            defer { close(terminal) }
            var unlock: Int32 = 0
            var number: UInt32 = 0
            try #require(ioctl(terminal, 0x4004_5431, &unlock) == 0 && ioctl(terminal, 0x8004_5430, &number) == 0)
            let secondary = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
            try #require(secondary >= 0)
            defer { close(secondary) }
            #expect(LogLines.destination(environment: [:], descriptor: secondary) == .terminal)
            #expect(LogLines.destination(environment: ["JOURNAL_STREAM": stream], descriptor: secondary) == .terminal)
        }
    }

    @Test("a tool under systemd writes priority prefixes, no time stamps")
    func toolUnderJournal() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/stderr"
            try #require(FileManager.default.createFile(atPath: path, contents: nil))
            let handle = try #require(FileHandle(forWritingAtPath: path))
            var status = stat()
            try #require(fstat(handle.fileDescriptor, &status) == 0)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try Products.path("aquarium-provision"))
            // Not provisioned: a warning, then the error that ends the run.
            process.arguments = ["maintenance", "watch", "--once", "--root", directory]
            process.environment = ProcessInfo.processInfo.environment.merging(["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino)"]) { $1 }
            process.standardError = handle
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            try handle.close()
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            #expect(process.terminationStatus == 2)
            #expect(lines.count == 2 && lines[0].hasPrefix("<4>this node has no provisioned cluster")
                    && lines[1].hasPrefix("<3>this node has no provisioned cluster"), "\(lines)")
            for line in lines {
                #expect(line.range(of: #"^<[2-7]>"#, options: .regularExpression) != nil && !line.contains("T0") && !line.contains("+0000"),
                        "\(line)")
            }
        }
    }
}
