import ArgumentParser
import CommandSupport
import Exec
import FileLayer
import Foundation
import JSONCoding
import Logging

/// `aquarium-provision bench`: what the cluster achieves against what its disks and network could give, measured
/// without touching data. This node's OSD disks are only read (direct I/O, sequential and random); the network is
/// the TCP round trip to every other host's OSDs and one TCP stream to each (BenchNetwork.swift); RADOS and RBD are
/// measured in a scratch pool that is removed afterwards, whatever happens. Refused on a cluster that is not
/// HEALTH_OK. The result is a cluster event.
public struct ClusterBenchReport: Codable, Equatable, Sendable {
    public struct DiskResult: Codable, Equatable, Sendable {
        public var osd: Int
        public var device: String
        /// Sequential reads of 4 MiB, MB/s (10^6 bytes).
        public var sequentialReadMBps: Double
        /// Random 4 KiB reads, one at a time, per second.
        public var randomReadIOPS: Double
    }

    public struct PeerResult: Codable, Equatable, Sendable {
        public var host: String
        public var address: String
        /// Median TCP connect time, milliseconds.
        public var roundTripMs: Double
        /// One TCP stream from this node to the host's `maintenance watch`, MB/s as the host received it; nil with
        /// `problem` when the host did not take it.
        public var streamMBps: Double?
        public var problem: String?

        public init(host: String, address: String, roundTripMs: Double, streamMBps: Double? = nil, problem: String? = nil) {
            self.host = host
            self.address = address
            self.roundTripMs = roundTripMs
            self.streamMBps = streamMBps
            self.problem = problem
        }
    }

    public var time: String
    public var seconds: Int
    public var disks: [DiskResult]
    public var peers: [PeerResult]
    public var pool: String
    public var replicas: Int
    /// `rados bench` with 4 MiB objects and 16 operations in flight, MB/s.
    public var radosWriteMBps: Double
    public var radosReadMBps: Double
    /// `rbd bench`, random 4 KiB writes with 16 in flight, operations per second.
    public var rbdWriteIOPS: Double
    /// What the disks could give: the sum of their sequential reads for reads, divided by the copies for writes.
    public var disksReadMBps: Double
    public var disksWriteMBps: Double
    /// Achieved ÷ possible, 0...1 (more when a cache helps).
    public var readEfficiency: Double
    public var writeEfficiency: Double

    /// One line for the cluster's event log.
    public var summary: String {
        "RADOS write \(Self.format(radosWriteMBps)) MB/s (\(Self.percent(writeEfficiency)) of the disks' \(Self.format(disksWriteMBps)) "
            + "at \(replicas) \(replicas == 1 ? "copy" : "copies")), read \(Self.format(radosReadMBps)) MB/s (\(Self.percent(readEfficiency)) of "
            + "\(Self.format(disksReadMBps))), RBD 4K random write \(Int(rbdWriteIOPS.rounded())) IOPS; \(disks.count) disk(s), "
            + (peers.isEmpty ? "one host" : "\(peers.count) other host(s), round trip up to \(Self.format(peers.map(\.roundTripMs).max() ?? 0)) ms"
                + (peers.compactMap(\.streamMBps).min().map { ", TCP stream at least \(Self.format($0)) MB/s" } ?? "")
                + (peers.contains { $0.streamMBps == nil } ? ", no stream to \(peers.filter { $0.streamMBps == nil }.map(\.host).joined(separator: ", "))" : ""))
    }

    static func format(_ value: Double) -> String { String(format: value >= 100 ? "%.0f" : "%.1f", value) }
    static func percent(_ value: Double) -> String { String(format: "%.0f%%", value * 100) }
}

extension ClusterBenchReport: CommandOutput {
    public var text: String {
        var lines = ["cluster benchmark (\(seconds) s per test), \(time)", "", "disks of this node (read only, direct I/O):"]
        lines.append("  OSD    device                     seq read MB/s   rand 4K read IOPS")
        for disk in disks {
            lines.append("  " + "osd.\(disk.osd)".padding(toLength: 7, withPad: " ", startingAt: 0)
                + disk.device.padding(toLength: 27, withPad: " ", startingAt: 0)
                + Self.format(disk.sequentialReadMBps).leftPadded(13) + String(Int(disk.randomReadIOPS.rounded())).leftPadded(20))
        }
        lines.append("")
        if peers.isEmpty {
            lines.append("network: one host, nothing between nodes to measure")
        } else {
            lines.append("network (to each host's OSDs: TCP round trip; one TCP stream, as the host received it):")
            for peer in peers {
                lines.append("  \(peer.host) \(peer.address): \(Self.format(peer.roundTripMs)) ms, "
                    + (peer.streamMBps.map { "\(Self.format($0)) MB/s" } ?? "no stream: \(peer.problem ?? "not measured")"))
            }
        }
        lines += ["", "cluster (scratch pool \(pool), \(replicas) \(replicas == 1 ? "copy" : "copies"), removed afterwards):",
                  "                 achieved      the disks could give   efficiency",
                  "  RADOS write  " + (Self.format(radosWriteMBps) + " MB/s").leftPadded(12)
                      + (Self.format(disksWriteMBps) + " MB/s").leftPadded(24) + Self.percent(writeEfficiency).leftPadded(13),
                  "  RADOS read   " + (Self.format(radosReadMBps) + " MB/s").leftPadded(12)
                      + (Self.format(disksReadMBps) + " MB/s").leftPadded(24) + Self.percent(readEfficiency).leftPadded(13),
                  "  RBD 4K random write: \(Int(rbdWriteIOPS.rounded())) IOPS"]
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

/// The measurements, each a small piece that tests can run on their own.
public enum ClusterBench {
    /// Reads the disk sequentially (4 MiB, direct I/O, from its middle, wrapping) for `seconds`; MB/s.
    public static func sequentialRead(device: String, seconds: Double) throws(ProvisionError) -> Double {
        try withDirect(device) { descriptor, size, buffer throws(ProvisionError) in
            let chunk = 4 << 20
            let chunks = max(1, Int(size) / chunk)
            var index = chunks / 2
            var bytes = 0
            let start = Date()
            repeat {
                let got = pread(descriptor, buffer, chunk, off_t(index * chunk))
                guard got > 0 else { throw .failed("cannot read \(device) at \(index * chunk): \(String(cString: strerror(errno)))") }
                bytes += got
                index = (index + 1) % chunks
            } while Date().timeIntervalSince(start) < seconds
            return Double(bytes) / 1e6 / Date().timeIntervalSince(start)
        }
    }

    /// Reads random 4 KiB blocks (direct I/O, one at a time) for `seconds`; per second.
    public static func randomRead(device: String, seconds: Double) throws(ProvisionError) -> Double {
        try withDirect(device) { descriptor, size, buffer throws(ProvisionError) in
            let blocks = max(1, size / 4096)
            var generator = SystemRandomNumberGenerator()
            var reads = 0
            let start = Date()
            repeat {
                let offset = off_t(UInt64.random(in: 0..<blocks, using: &generator) * 4096)
                guard pread(descriptor, buffer, 4096, offset) == 4096 else {
                    throw .failed("cannot read \(device) at \(offset): \(String(cString: strerror(errno)))")
                }
                reads += 1
            } while Date().timeIntervalSince(start) < seconds
            return Double(reads) / Date().timeIntervalSince(start)
        }
    }

    static func withDirect<T>(_ device: String,
                              _ body: (Int32, UInt64, UnsafeMutableRawPointer) throws(ProvisionError) -> T) throws(ProvisionError) -> T {
        let descriptor = open(device, O_RDONLY | FileIO.directFlag | O_CLOEXEC)
        guard descriptor >= 0 else { throw .failed("cannot open \(device) for reading: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let size = UInt64(max(0, lseek(descriptor, 0, SEEK_END)))
        guard size >= 4 << 20 else { throw .failed("\(device) is smaller than 4 MiB") }
        guard let buffer = aligned_alloc(4096, 4 << 20) else { throw .failed("cannot allocate a read buffer") }
        defer { free(buffer) }
        return try body(descriptor, size, buffer)
    }

    /// The median time of five TCP connects to `host:port`, in milliseconds; nil when none succeeds.
    public static func roundTrip(host: String, port: Int) -> Double? {
        var times: [Double] = []
        for _ in 0..<5 {
            let start = Date()
            if Ports.isListening(host: host, port: port) { times.append(Date().timeIntervalSince(start) * 1000) }
        }
        guard !times.isEmpty else { return nil }
        return times.sorted()[times.count / 2]
    }

    /// `rados bench --format json`: a line `hints = 1`, then one JSON document whose `bandwidth` is MiB/s (as a
    /// string); in MB/s.
    public static func radosBandwidth(_ output: Data) -> Double? {
        for line in output.split(separator: 0x0a) where line.first == UInt8(ascii: "{") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
            let value = object["bandwidth"] ?? object["bandwidth_MB_sec"]
            if let mib = (value as? Double) ?? (value as? String).flatMap(Double.init) { return mib * 1.048576 }
        }
        return nil
    }

    /// `rbd bench`'s last line: `elapsed: 3   ops: 16384   ops/sec: 5461.33   bytes/sec: 21 MiB/s`.
    public static func rbdOpsPerSecond(_ output: String) -> Double? {
        guard let line = output.split(separator: "\n").last(where: { $0.contains("ops/sec:") }) else { return nil }
        let words = line.split(whereSeparator: \.isWhitespace)
        guard let index = words.firstIndex(of: "ops/sec:"), index + 1 < words.count else { return nil }
        return Double(words[index + 1])
    }
}

public struct BenchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the cluster against what its disks and network could give, without touching data.",
        discussion: """
            On a node with the admin key (a bootstrap or monitor node), with the cluster HEALTH_OK: reads this \
            node's OSD disks (sequential 4 MiB and random 4 KiB, direct I/O, nothing written), measures the TCP \
            round trip to every other host's OSDs and one TCP stream to each (taken by that host's \
            aquarium-maintenance service on port 7399 for those seconds), then writes and reads a scratch pool with rados bench and rbd \
            bench and removes it. Prints achieved against possible ("efficiency") and records a bench.finished \
            event in the cluster's event log. It loads the cluster while it runs: not during production peaks.

            Examples:
              aquarium-provision bench
              aquarium-provision bench --seconds 30 --json
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions
    @Flag(name: .long, help: "Print JSON.") public var json = false
    @Option(name: .long, help: "Seconds per test (1-300; the disks get a third of it each way).") public var seconds = 10

    public init() {}

    public func validate() throws {
        guard (1...300).contains(seconds) else { throw ValidationError("--seconds must be 1 to 300, not \(seconds)") }
    }

    public func run() throws {
        let (layout, state, identity) = try rootOptions.provisioned()
        let logger = global.logger("aquarium.provision")
        guard identity.join == nil else {
            throw ProvisionError.refused("bench makes and removes a scratch pool, which needs the admin key: run it on a "
                + "bootstrap or monitor node")
        }
        let tools = CephTools(layout: layout, logger: logger, connected: true)
        defer { tools.session?.close() }
        let report = try ClusterBenchRun(layout: layout, tools: tools, state: state, identity: identity, seconds: seconds,
                                         logger: logger).run(progress: json ? { _ in } : { print($0) })
        try OutputFormatter(json: json).print(report)
    }
}

struct ClusterBenchRun {
    let layout: Layout
    let tools: CephTools
    let state: ProvisionState
    let identity: ClusterIdentity
    let seconds: Int
    let logger: Logger

    func run(progress: (String) -> Void) throws(ProvisionError) -> ClusterBenchReport {
        let health = try tools.json(CephJSON.Health.self, ["health"], timeout: 30)
        // As the `health` step: HEALTH_OK, or only the warnings a single node always has.
        let healthy = health?.status == "HEALTH_OK" || (health?.status == "HEALTH_WARN"
            && Set((health?.checks ?? [:]).keys).isSubset(of: CephConfig.expectedSingleNodeChecks))
        guard healthy else {
            let checks = (health?.checks ?? [:]).keys.sorted().joined(separator: ", ")
            throw .refused("the cluster is \(health?.status ?? "not answering")\(checks.isEmpty ? "" : " (\(checks))"): "
                + "bench runs only on a healthy cluster, so that its load cannot hurt a cluster already in trouble")
        }
        // This node's OSD disks, read only.
        var disks: [ClusterBenchReport.DiskResult] = []
        let diskSeconds = max(1, Double(seconds) / 3)
        for id in Set(state.osdIds.values).sorted() {
            let block = layout.osdData(id) + "/block"
            guard let device = try? FileManager.default.destinationOfSymbolicLink(atPath: block) else { continue }
            progress("reading osd.\(id)'s disk \(device) ...")
            disks.append(ClusterBenchReport.DiskResult(
                osd: id, device: device, sequentialReadMBps: try ClusterBench.sequentialRead(device: device, seconds: diskSeconds),
                randomReadIOPS: try ClusterBench.randomRead(device: device, seconds: diskSeconds)))
        }
        let peers = try peerNetwork(seconds: diskSeconds, progress: progress)
        // The scratch pool: made, measured, removed.
        let pool = "aquarium-bench-" + String(UUID().uuidString.prefix(8)).lowercased()
        progress("writing and reading the scratch pool \(pool) ...")
        try tools.run("ceph", ["osd", "pool", "create", pool, "8"], timeout: 60)
        let measured: (write: Double, read: Double, rbd: Double, replicas: Int)
        do {
            measured = try measure(pool)
        } catch {
            removePool(pool)
            throw error
        }
        removePool(pool)
        // What the disks could give: the cluster's OSD disks are only this node's for the measured part; the others'
        // are taken to be alike (a rack's nodes are built the same).
        let hosts = max(1, peers.count + 1)
        let readPossible = disks.map(\.sequentialReadMBps).reduce(0, +) * Double(hosts)
        let writePossible = readPossible / Double(max(1, measured.replicas))
        let report = ClusterBenchReport(
            time: ProvisionEvent(event: "").time, seconds: seconds, disks: disks, peers: peers, pool: pool,
            replicas: measured.replicas, radosWriteMBps: measured.write, radosReadMBps: measured.read, rbdWriteIOPS: measured.rbd,
            disksReadMBps: readPossible, disksWriteMBps: writePossible,
            readEfficiency: readPossible > 0 ? measured.read / readPossible : 0,
            writeEfficiency: writePossible > 0 ? measured.write / writePossible : 0)
        let event = ClusterEvent(host: identity.daemonId, ProvisionEvent(event: "bench.finished", detail: report.summary))
        do {
            try ClusterEventLog(tools: tools).append([event], host: identity.daemonId)
        } catch {
            logger.warning("the bench result was not written to the cluster's event log: \(error.description)")
        }
        return report
    }

    func measure(_ pool: String) throws(ProvisionError) -> (write: Double, read: Double, rbd: Double, replicas: Int) {
        try tools.run("ceph", ["osd", "pool", "application", "enable", pool, "rbd"], timeout: 60)
        let details = try tools.json([CephJSON.PoolDetail].self, ["osd", "pool", "ls", "detail"], timeout: 60) ?? []
        let replicas = details.first { $0.poolName == pool }?.size ?? 1
        let limit = seconds * 3 + 120
        let write = try tools.run("rados", ["-p", pool, "bench", String(seconds), "write", "-b", "4194304", "-t", "16",
                                            "--no-cleanup", "--format", "json"], timeout: limit)
        let read = try tools.run("rados", ["-p", pool, "bench", String(seconds), "seq", "-t", "16", "--format", "json"],
                                 timeout: limit)
        guard let writeMBps = ClusterBench.radosBandwidth(write.standardOutput),
              let readMBps = ClusterBench.radosBandwidth(read.standardOutput) else {
            throw .failed("rados bench printed no summary: \(write.output.suffix(300)) \(read.output.suffix(300))")
        }
        try tools.run("rbd", ["create", "--size", "1024", "\(pool)/bench"], timeout: 60)
        let total = max(16, seconds * 4) << 20
        let rbd = try tools.run("rbd", ["bench", "--io-type", "write", "--io-size", "4096", "--io-threads", "16",
                                        "--io-total", String(total), "--io-pattern", "rand", "\(pool)/bench"], timeout: limit)
        guard let iops = ClusterBench.rbdOpsPerSecond(rbd.output) else {
            throw .failed("rbd bench printed no result: \(rbd.output.suffix(300))")
        }
        return (writeMBps, readMBps, iops, replicas)
    }

    /// Removes the scratch pool: pool deletion allowed for the moment it takes, then set back as it was.
    func removePool(_ pool: String) {
        let dump = (try? tools.json([CephJSON.ConfigEntry].self, ["config", "dump"])) ?? nil
        let previous = dump?.first { $0.section == "mon" && $0.name == "mon_allow_pool_delete" }?.value
        do {
            try tools.run("ceph", ["config", "set", "mon", "mon_allow_pool_delete", "true"], timeout: 60)
            try tools.run("ceph", ["osd", "pool", "rm", pool, pool, "--yes-i-really-really-mean-it"], timeout: 120)
        } catch {
            logger.error("the scratch pool \(pool) was not removed: \(error.description); remove it with `ceph osd pool rm \(pool) \(pool) --yes-i-really-really-mean-it`")
        }
        if let previous {
            _ = try? tools.run("ceph", ["config", "set", "mon", "mon_allow_pool_delete", previous], timeout: 60)
        } else {
            _ = try? tools.run("ceph", ["config", "rm", "mon", "mon_allow_pool_delete"], timeout: 60)
        }
    }

    /// The TCP round trip to one OSD of every other CRUSH host (`ceph osd tree`), at its front address (`ceph osd
    /// metadata`), and one TCP stream of `seconds` to that address, taken by the host's `maintenance watch`.
    func peerNetwork(seconds: Double, progress: (String) -> Void) throws(ProvisionError) -> [ClusterBenchReport.PeerResult] {
        let tree = try tools.json(CephJSON.OSDTree.self, ["osd", "tree"], timeout: 30)
        let result = try tools.run("ceph", ["osd", "metadata", "--format", "json"], timeout: 30)
        let metadata = (try? JSONSerialization.jsonObject(with: result.standardOutput) as? [[String: Any]]) ?? []
        var addresses: [Int: String] = [:]
        for osd in metadata {
            if let id = osd["id"] as? Int, let address = osd["front_addr"] as? String { addresses[id] = address }
        }
        var targets: [(host: String, address: (host: String, port: Int))] = []
        for node in tree?.nodes ?? [] where node.type == "host" && node.name != identity.daemonId {
            guard let host = node.name,
                  let address = (node.children ?? []).filter({ $0 >= 0 }).sorted().lazy
                      .compactMap({ addresses[$0].flatMap(Self.address) }).first else { continue }
            targets.append((host, address))
        }
        targets.sort { $0.host < $1.host }
        guard !targets.isEmpty else { return [] }
        let operations = Operations(layout: layout, identity: identity, tools: tools, logger: logger)
        let requests = try operations.requestBenchStreams(targets.map { ($0.host, $0.address.host) }, seconds: seconds)
        defer { operations.endBenchStreams(requests) }
        var peers: [ClusterBenchReport.PeerResult] = []
        for (target, request) in zip(targets, requests) {
            guard let time = ClusterBench.roundTrip(host: target.address.host, port: target.address.port) else { continue }
            var peer = ClusterBenchReport.PeerResult(host: target.host, address: "\(target.address.host):\(target.address.port)",
                                                     roundTripMs: time)
            progress("sending a TCP stream to \(target.host) (\(target.address.host)) ...")
            do {
                // Its watch looks every few seconds (5 by default).
                let sent = try BenchStream.send(host: target.address.host, port: request.port, token: request.token,
                                                seconds: seconds, connectBy: Date().addingTimeInterval(15))
                peer.streamMBps = Double(sent.bytes) / sent.seconds / 1_000_000
            } catch {
                peer.problem = error.description
            }
            peers.append(peer)
        }
        return peers
    }

    /// `[v2:10.0.0.2:6802/1234,v1:10.0.0.2:6803/1234]` or `10.0.0.2:6803/1234`: the first address.
    static func address(_ text: String) -> (host: String, port: Int)? {
        var first = text.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",").first.map(String.init) ?? ""
        if let colon = first.firstIndex(of: ":"), first.hasPrefix("v") { first = String(first[first.index(after: colon)...]) }
        first = String(first.split(separator: "/").first ?? "")
        guard let colon = first.lastIndex(of: ":"), let port = Int(first[first.index(after: colon)...]) else { return nil }
        return (String(first[..<colon]), port)
    }
}
