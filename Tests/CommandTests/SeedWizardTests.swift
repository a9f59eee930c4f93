import Exec
import Foundation
import Testing
import TestSupport

/// `aquarium-image seed new` driven like an operator drives it: in a real terminal (a pane of a private tmux server),
/// one answer per question, each typed only once its question is on the screen.
@Suite("seed new: the wizard in a real terminal", .serialized)
struct SeedWizardTests {
    /// A machine with an SSD and two HDDs, each with a serial (docs/inventory.md).
    static let inventory = """
        {"disks": [
          {"name": "sda", "path": "/dev/sda", "sizeBytes": 240057409536, "rotational": false, "transport": "sata",
           "vendor": "ATA", "model": "INTEL SSDSC2KB240G8", "serial": "PHYF0001SSD240", "wwn": "0x55cd2e4150000001"},
          {"name": "sdb", "path": "/dev/sdb", "sizeBytes": 4000787030016, "rotational": true, "transport": "sata",
           "vendor": "ATA", "model": "ST4000NM000A", "serial": "ZC1000A1"},
          {"name": "sdc", "path": "/dev/sdc", "sizeBytes": 4000787030016, "rotational": true, "transport": "sata",
           "vendor": "ATA", "model": "ST4000NM000A", "serial": "ZC1000A2"}
         ],
         "machine": {"cpuThreads": 4, "memoryBytes": 8589934592}}
        """
    static let sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICLdnpvPSKsKgSFQEi21Q0gaeHThjBwMFBKrqtNgmqn4 ops@example"
    static let password = "Wizard-Pass-4711!"

    static let noTerminal = "seed new asks questions on a terminal; for a script, start from "
        + "'aquarium-image seed example > node.yaml' and check it with 'aquarium-image seed validate'"

    /// A tmux server of this test's own (`-L`, no configuration file) with one session running the wizard; `kill()`
    /// ends the server and everything in it.
    struct Terminal {
        let program: String
        let socket = "aquarium-wizard-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        let session = "wizard"

        init() throws {
            guard let tmux = Command.resolve("tmux") else { throw MissingCapability(what: "the program 'tmux'") }
            program = tmux
        }

        @discardableResult
        func tmux(_ arguments: [String]) throws -> CommandResult {
            try Command(program, ["-L", socket, "-f", "/dev/null"] + arguments).run(acceptedStatuses: Set(0...255))
        }

        /// Starts `argv` in a 200×50 pane that stays on screen after the program ends (to read it and its status).
        func start(_ argv: [String]) throws {
            let result = try tmux(["new-session", "-d", "-s", session, "-x", "200", "-y", "50"] + argv
                                  + [";", "set-option", "-t", session, "remain-on-exit", "on"])
            guard result.status == 0 else {
                throw WizardTestFailure("tmux new-session exited \(result.status): \(result.errorOutput)")
            }
        }

        /// Ends the server; its socket file, which tmux leaves behind, goes too.
        func kill() {
            let path = (try? tmux(["display-message", "-p", "#{socket_path}"]))?.output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            _ = try? tmux(["kill-server"])
            if let path, path.hasSuffix("/" + socket) { unlink(path) }
        }

        /// The whole pane, scrollback included, wrapped lines joined.
        func screen() -> String {
            (try? tmux(["capture-pane", "-p", "-J", "-S", "-", "-t", session]).output) ?? ""
        }

        /// Types `text` literally, then Enter.
        func type(_ text: String) throws {
            if !text.isEmpty { try tmux(["send-keys", "-t", session, "-l", text]) }
            try tmux(["send-keys", "-t", session, "Enter"])
        }

        /// Waits until `text` is on the screen `count` times; the screen, or a failure that shows it.
        @discardableResult
        func wait(for text: String, count: Int = 1, seconds: Double = 10) throws -> String {
            let deadline = Date().addingTimeInterval(seconds)
            while true {
                let screen = screen()
                if screen.components(separatedBy: text).count - 1 >= count { return screen }
                if Date() > deadline {
                    throw WizardTestFailure("waited \(Int(seconds)) s for \"\(text)\" (\(count)×); the screen:\n\(screen)")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }

        /// Waits for the program to end; its exit status.
        func exitStatus(seconds: Double = 10) throws -> Int32 {
            let deadline = Date().addingTimeInterval(seconds)
            while true {
                let fields = try tmux(["display-message", "-p", "-t", session, "#{pane_dead} #{pane_dead_status}"])
                    .output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
                // tmux 3.3 shows an exit status of 0 as nothing.
                if fields.first == "1" { return fields.count > 1 ? Int32(fields[1]) ?? -1 : 0 }
                if Date() > deadline { throw WizardTestFailure("the wizard did not end; the screen:\n\(screen())") }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    struct WizardTestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test("a bootstrap node with a static address, disk 1 as system disk and the HDDs as storage",
          .requires(root: false, programs: ["tmux"]))
    func staticBootstrapNode() throws {
        let tool = try Products.path("aquarium-image")
        try withTemporaryDirectory { directory in
            let inventory = directory + "/inventory.json"
            let output = directory + "/node.yaml"
            try Data(Self.inventory.utf8).write(to: URL(fileURLWithPath: inventory))
            let terminal = try Terminal()
            defer { terminal.kill() }
            try terminal.start([tool, "seed", "new", "--inventory", inventory, "--output", output])

            // A bad host name is refused with the validator's message and asked again.
            try terminal.wait(for: "Host name [node-01]:")
            try terminal.type("Node_1")
            try terminal.wait(for: "host.hostname: 'Node_1' must be an RFC 1123 host name")
            try terminal.wait(for: "Host name [node-01]:", count: 2)
            try terminal.type("node-07")

            try terminal.wait(for: "Password of the user aquarium (not shown)")
            try terminal.type(Self.password)
            try terminal.wait(for: "Password again:")
            try terminal.type(Self.password)
            try terminal.wait(for: "hashed here with yescrypt")

            try terminal.wait(for: "SSH public key of aquarium, or a .pub file")
            try terminal.type(Self.sshKey)
            try terminal.wait(for: "Another SSH key or .pub file (empty line ends) [done]:")
            try terminal.type("")

            try terminal.wait(for: "Network: dhcp or static [dhcp]:")
            try terminal.type("static")
            try terminal.wait(for: "Interface (a name such as eno1, or a MAC address) [eno1]:")
            try terminal.type("")
            try terminal.wait(for: "Address with its prefix length")
            try terminal.type("10.0.0.11/24")
            // A rule across answers: the gateway must be in the address's subnet.
            try terminal.wait(for: "Gateway (- for none) [10.0.0.1]:")
            try terminal.type("10.1.0.1")
            try terminal.wait(for: "network.interfaces[0].gateway: 10.1.0.1 is outside the interface's subnet 10.0.0.0/24")
            try terminal.wait(for: "Gateway (- for none) [10.0.0.1]:", count: 2)
            try terminal.type("")
            try terminal.wait(for: "Name servers, separated by spaces (- for none) [10.0.0.1]:")
            try terminal.type("")
            try terminal.wait(for: "Ceph public network (- for none) [10.0.0.0/24]:")
            try terminal.type("")

            let disks = try terminal.wait(for: "System disk (number) [1]:")
            #expect(disks.contains("/dev/sda") && disks.contains("PHYF0001SSD240") && disks.contains("ZC1000A2"), "\(disks)")
            try terminal.type("1")
            try terminal.wait(for: "Storage disks (number) [1]:")
            try terminal.type("2")
            try terminal.wait(for: "Wipe storage disks that hold data")
            try terminal.type("")
            try terminal.wait(for: "Cluster role: bootstrap (a new cluster) or join (an existing one) [bootstrap]:")
            try terminal.type("")

            let summary = try terminal.wait(for: "Write \(output)? [y/N]:")
            try terminal.type("y")
            let screen = try terminal.wait(for: "Next step: aquarium-image seed inject /dev/sdX \(output)")
            let status = try terminal.exitStatus()
            #expect(status == 0, "exit status \(status); the screen:\n\(screen)")

            // The summary: the redacted seed and the plan FirstBoot will follow, with its requirement lines.
            #expect(summary.contains("system disk: /dev/sda (240 GB SSD"), "\(summary)")
            #expect(summary.contains("storage disk: /dev/sdb") && summary.contains("storage disk: /dev/sdc"), "\(summary)")
            #expect(summary.contains("requirement met storage_disks"), "\(summary)")
            #expect(summary.contains("password_hash: \"<redacted>\""), "\(summary)")
            #expect(!screen.contains(Self.password), "the password is on the screen")

            // The file: 0600, valid, a yescrypt hash and never the password, the chosen disk by its serial.
            var info = stat()
            #expect(stat(output, &info) == 0 && info.st_mode & 0o777 == 0o600, "mode \(String(info.st_mode & 0o777, radix: 8))")
            let text = try String(contentsOfFile: output, encoding: .utf8)
            #expect(!text.contains(Self.password))
            let hashLine = text.split(separator: "\n").first { $0.contains("password_hash:") }
            #expect(hashLine?.contains("password_hash: \"$y$") == true, "\(text)")

            let validate = try Products.run("aquarium-image", ["seed", "validate", output])
            #expect(validate.status == 0, "\(validate.errorOutput)\n\(text)")
            let effective = try Products.run("aquarium-image", ["seed", "validate", "--effective", output])
            #expect(effective.status == 0, "\(effective.errorOutput)")
            let document = try JSONSerialization.jsonObject(with: effective.standardOutput) as? [String: Any]
            let disksSection = document?["disks"] as? [String: Any]
            let system = (disksSection?["system"] as? [String: Any])?["match"] as? [String: Any]
            let storage = (disksSection?["storage"] as? [String: Any])?["match"] as? [String: Any]
            #expect(system?["serial"] as? String == "PHYF0001SSD240", "\(effective.output)")
            #expect(storage?["rotational"] as? Bool == true, "\(effective.output)")
            let host = document?["host"] as? [String: Any]
            #expect(host?["hostname"] as? String == "node-07", "\(effective.output)")
        }
    }

    @Test("without a terminal it refuses (exit 2) and points to seed example")
    func refusesWithoutTerminal() throws {
        let result = try Products.run("aquarium-image", ["seed", "new"])
        #expect(result.status == 2, "\(result.errorOutput)")
        #expect(result.errorOutput.contains(Self.noTerminal), "\(result.errorOutput)")
        #expect(result.output.isEmpty, "\(result.output)")
    }
}
