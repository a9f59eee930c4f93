import Exec
import Foundation
import QEMU
import TestSupport

/// Shared state of the end-to-end suite: one image build per run (the root filesystem cache makes
/// reruns fast), working directories, seed injection, boots with saved consoles, and figures.
final class E2E: @unchecked Sendable {
    static let shared = E2E()
    /// FirstBoot's handoff line on the console ("aquarium-firstboot[PID]: handoff: ...").
    static let handoffMarker = "]: handoff: "

    let root: String
    let cache: String
    private let lock = NSLock()
    private var built: Result<String, Error>?

    private init() {
        let environment = ProcessInfo.processInfo.environment
        root = environment["AQUARIUM_E2E_DIR"] ?? "/var/tmp/aquarium-e2e"
        // The same cache as the full-build test, so CI debootstraps once.
        cache = environment["AQUARIUM_IMAGE_CACHE"] ?? "/var/cache/aquarium-image"
    }

    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func directory(_ name: String) throws -> String {
        let path = root + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Builds the image from image/ once, with the minimal profile (no Ceph: these boots test FirstBoot;
    /// the tools inside are statically linked builds).
    func image() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let built { return try built.get() }
        let result = Result { () throws -> String in
            let output = try directory("out")
            let start = Date()
            // The tools that go into the image must run without a Swift toolchain: scripts/build-node-tools
            // makes statically linked builds, and `build` installs the ones beside the aquarium-image it runs.
            guard let tools = ProcessInfo.processInfo.environment["AQUARIUM_NODE_TOOLS"] else {
                throw MissingCapability(what: "AQUARIUM_NODE_TOOLS (run scripts/run-tests, which builds the node tools)")
            }
            let run = try Command(tools + "/aquarium-image", ["build", "--description", E2E.repository + "/image",
                                                             "--output", output, "--cache", cache, "--profile", "minimal", "--quiet"])
                .run(acceptedStatuses: Set(0...255))
            guard run.status == 0 else {
                throw CommandError(command: run.command, status: run.status, standardError: run.errorOutput, reason: "image build failed")
            }
            note("image build: \(Int(Date().timeIntervalSince(start))) s")
            let images = try FileManager.default.contentsOfDirectory(atPath: output).filter { $0.hasSuffix(".raw") }
            guard let image = images.first else { throw MissingCapability(what: "a .raw image in \(output)") }
            return output + "/" + image
        }
        built = result
        return try result.get()
    }

    func inject(_ stick: Stick, seed text: String, as name: String?) throws {
        let file = try directory("seeds") + "/\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        var arguments = ["seed", "inject", stick.path, file]
        if let name { arguments += ["--as", name] }
        let run = try Products.run("aquarium-image", arguments)
        guard run.status == 0 else {
            throw CommandError(command: run.command, status: run.status, standardError: run.errorOutput, reason: "seed inject failed")
        }
    }

    /// Boots a node until it powers off (at most 15 minutes under TCG); the console is kept in logs/.
    func boot(_ name: String, stick: Stick, disks: [VirtualDisk], systemSerial: String? = nil) throws -> VirtualMachineRun {
        let logs = try directory("logs")
        let vars = logs + "/\(name).OVMF_VARS.fd"
        try? FileManager.default.removeItem(atPath: vars)
        try FileManager.default.copyItem(atPath: "/usr/share/OVMF/OVMF_VARS_4M.fd", toPath: vars)
        let machine = VirtualMachine(stick: stick.path, disks: disks, memoryMiB: 2048, cpus: 2, systemSerial: systemSerial,
                                     firmwareVars: vars, consoleLog: logs + "/\(name).console.log")
        let run = try VirtualMachineRunner().run(machine, timeoutSeconds: 900, watchMarkers: ["Linux version", E2E.handoffMarker])
        note("boot \(name): \(run.ending) after \(Int(run.seconds)) s; kernel at \(run.markerTimes["Linux version"].map { Int($0) } ?? -1) s, handoff at \(run.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s")
        return run
    }

    /// Appends a figure to logs/figures.txt (boot times, build time) for the record.
    func note(_ line: String) {
        let path = (try? directory("logs")).map { $0 + "/figures.txt" } ?? "/tmp/aquarium-e2e-figures.txt"
        let data = Data((line + "\n").utf8)
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(data)
            try? handle.close()
        } else {
            _ = FileManager.default.createFile(atPath: path, contents: data)
        }
        print("e2e: \(line)")
    }

    /// The console lines that report a unit that failed to start.
    static func failedUnits(_ console: String) -> [String] {
        console.split(separator: "\n").filter { $0.contains("Failed to start") }.map(String.init)
    }

    /// A seed for a one-SSD, two-HDD node: the SSD becomes the system disk, the HDDs stay for OSDs.
    static func seed(hostname: String, filesystem: String) -> String {
        """
        version: 1
        host:
          hostname: \(hostname)
        network:
          public_network: 10.0.2.0/24
        disks:
          system:
            match: {rotational: false, max_size: 16GiB}
            filesystem: \(filesystem)
          storage:
            match: {rotational: true}
        cluster:
          role: bootstrap

        """
    }
}
