import Exec
import Foundation
import Testing

/// The one process runner on real processes: statuses, pipes under load, time and output limits, streamed lines,
/// detached daemons. Bounds on time are generous (a loaded machine must not fail them).
@Suite struct RunnerTests {
    func withDirectory<T>(_ body: (String) throws -> T) throws -> T {
        let directory = NSTemporaryDirectory() + "aquarium-exec-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(directory)
    }

    /// True while `pid` exists and is not a zombie.
    static func alive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// Waits up to `seconds` for `condition`.
    static func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }

    static let statusCases: [(String, Set<Int32>, String?)] = [
        ("exit 0", [0], nil),
        ("exit 3", [0], "failed with status 3"),
        ("exit 3", [0, 3], nil),
        ("echo oops >&2; exit 1", [0], "failed with status 1: oops"),
        ("kill -9 $$", [0], "killed by signal 9"),
    ]

    @Test("exit statuses: accepted ones return, others throw with the status or the signal", arguments: statusCases)
    func statuses(script: String, accepted: Set<Int32>, failure: String?) throws {
        do {
            let result = try Command("sh", ["-c", script]).run(acceptedStatuses: accepted)
            #expect(failure == nil, "\(script) returned \(result.status)")
        } catch {
            #expect(failure.map { error.description.contains($0) } == true, "\(script): \(error)")
        }
    }

    @Test func tenMiBInBothDirectionsDoesNotDeadlock() throws {
        let input = Data((0..<(10 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) })
        // Every byte read is written to both outputs before more is read: pipes fill up in all three directions.
        let result = try Command("tee", ["/dev/stderr"]).run(input: input)
        #expect(result.standardOutput == input)
        #expect(result.standardError == input)
    }

    @Test("a time limit stops the whole process group, grandchildren included", arguments: [false, true])
    func timeoutKillsTheGroup(ignoresTerm: Bool) throws {
        try withDirectory { directory in
            let pidFile = directory + "/grandchild"
            let trap = ignoresTerm ? "trap '' TERM; " : ""
            let command = Command("sh", ["-c", trap + "sleep 100 & echo $! > \(pidFile); sleep 100"], timeout: 1)
            let started = Date()
            var caught: CommandError?
            do throws(CommandError) { try command.run(killGrace: 2) } catch { caught = error }
            let seconds = Date().timeIntervalSince(started)
            #expect(caught?.timedOut == true)
            #expect(caught?.description.contains("timed out after 1 s") == true, "\(String(describing: caught))")
            #expect(seconds < 30, "took \(seconds) s")
            let grandchild = (try? String(contentsOfFile: pidFile, encoding: .utf8))
                .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            #expect(grandchild != nil)
            if let grandchild {
                let gone = Self.eventually(10) { !Self.alive(grandchild) }
                #expect(gone, "the grandchild \(grandchild) survived")
                if !gone { kill(grandchild, SIGKILL) }
            }
        }
    }

    @Test("an output limit keeps the first bytes and stops a program that says more", arguments: [
        (["sh", "-c", "printf abc"], 10, false, 3),
        (["head", "-c", "1000", "/dev/zero"], 1000, false, 1000),
        (["yes"], 1000, true, 1000),
        (["sh", "-c", "head -c 5000 /dev/zero; exit 1"], 100, true, 100),
    ])
    func outputLimit(argv: [String], limit: Int, exceeded: Bool, kept: Int) throws {
        let result = try Command(argv[0], Array(argv.dropFirst())).run(outputLimit: limit)
        #expect(result.outputLimitExceeded == exceeded)
        #expect(result.standardOutput.count == kept)
    }

    @Test func streamedLinesArriveInOrder() throws {
        var lines: [OutputChannel: [String]] = [:]
        let script = "for i in 1 2 3 4 5; do echo line $i; echo err $i >&2; done; printf 'no newline'"
        let result = try Command("sh", ["-c", script]).run { channel, line in lines[channel, default: []].append(line) }
        #expect(lines[.standardOutput] == ["line 1", "line 2", "line 3", "line 4", "line 5", "no newline"])
        #expect(lines[.standardError] == ["err 1", "err 2", "err 3", "err 4", "err 5"])
        #expect(result.output.hasPrefix("line 1\nline 2\n"))
    }

    @Test func aMissingProgramIsNamed() {
        #expect {
            try Command("aquarium-no-such-program", ["x"]).run()
        } throws: { error in
            "\(error)".contains("aquarium-no-such-program") && "\(error)".contains("not found")
        }
    }

    @Test func environmentAndDescriptors() throws {
        let result = try Command("sh", ["-c", "echo $AQUARIUM_EXEC_TEST"], environment: ["AQUARIUM_EXEC_TEST": "value"]).run()
        #expect(result.output == "value\n")
        // A descriptor of ours without close-on-exec must not reach the child.
        let fd = fcntl(0, F_DUPFD, 200)
        #expect(fd >= 200)
        defer { close(fd) }
        let listing = try Command("ls", ["/proc/self/fd"]).run().output.split(separator: "\n")
        #expect(!listing.contains(Substring(String(fd))), "\(listing)")
    }

    @Test func aStartedProgramIsWaitedForAndTerminated() throws {
        let child = try Command("sleep", ["100"]).start()
        #expect(child.wait(timeout: 0.2) == nil)
        #expect(child.isRunning)
        #expect(child.terminate(grace: 5) == .signalled(SIGTERM))
        #expect(!child.isRunning)
        let quick = try Command("sh", ["-c", "exit 4"]).start()
        #expect(quick.wait(timeout: 30) == .exited(4))
    }

    @Test func aDetachedDaemonWritesItsFileInASessionOfItsOwn() throws {
        try withDirectory { directory in
            let log = directory + "/daemon.out"
            try Data("before\n".utf8).write(to: URL(fileURLWithPath: log))
            let pid = try Command("sh", ["-c", "echo started; echo complaint >&2; exec sleep 100"])
                .spawnDetached(appendingOutputTo: log)
            defer {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
            let text = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
            #expect(Self.eventually(20) { text().contains("started") && text().contains("complaint") }, "\(text())")
            #expect(text().hasPrefix("before\n"))
            #expect(getsid(pid) == pid)
            #expect(getpgid(pid) == pid)
            #expect(getsid(pid) != getsid(0))
            #expect(Self.alive(pid))
        }
    }
}
