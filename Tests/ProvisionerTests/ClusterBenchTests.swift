import Foundation
import Testing
import TestSupport
@testable import Provisioner

/// The cluster benchmark's pieces: reading a disk without writing it (real loop devices, 512-byte and 4K sectors),
/// and what it reads from Ceph's tools. The whole command runs on a real cluster in ClusterTests.
struct ClusterBenchTests {
    /// Sequential and random direct reads measure something, and the disk's bytes are exactly as before.
    @Test(.requires(root: true, programs: ["losetup"]), arguments: [512, 4096])
    func readsADiskWithoutChangingIt(sectorSize: Int) throws {
        try LoopDevice.with(.init(sizeBytes: 64 << 20, sectorSize: sectorSize)) { loop in
            let pattern = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) })
            let handle = try #require(FileHandle(forWritingAtPath: loop.path))
            try handle.seek(toOffset: 32 << 20)
            try handle.write(contentsOf: pattern)
            try handle.synchronize()
            try handle.close()
            func contents() throws -> Data? { try FileHandle(forReadingAtPath: loop.path)?.readToEnd() }
            let before = try #require(try contents())
            #expect(before.count == 64 << 20 && before[(32 << 20)..<((32 << 20) + pattern.count)] == pattern)
            let sequential = try ClusterBench.sequentialRead(device: loop.path, seconds: 0.3)
            let random = try ClusterBench.randomRead(device: loop.path, seconds: 0.3)
            #expect(sequential > 0 && random > 0, "\(sequential) MB/s, \(random) IOPS")
            #expect(try contents() == before, "the disk changed")
        }
    }

    /// The round trip to a listener on 127.0.0.1 and on ::1 (an OSD's IPv6 address comes in brackets); none once it
    /// is gone.
    @Test(arguments: [(AF_INET, "127.0.0.1"), (AF_INET6, "[::1]")])
    func roundTripOverIPv4AndIPv6(family: Int32, host: String) throws {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var port = 0
        if family == AF_INET6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_addr = in6addr_loopback
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            try withUnsafeMutablePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    try #require(bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0)
                }
            }
            port = Int(UInt16(bigEndian: address.sin6_port))
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            try withUnsafeMutablePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    try #require(bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0)
                }
            }
            port = Int(UInt16(bigEndian: address.sin_port))
        }
        let time = ClusterBench.roundTrip(host: host, port: port)
        close(fd)
        #expect(time != nil && time! >= 0, "no connection to \(host):\(port)")
        #expect(ClusterBench.roundTrip(host: host, port: port) == nil, "\(host):\(port) answers after it was closed")
    }

    @Test func refusesWhatItCannotRead() {
        #expect(throws: ProvisionError.self) { try ClusterBench.sequentialRead(device: "/nonexistent/disk", seconds: 0.1) }
    }

    @Test(arguments: [
        ("[v2:10.0.0.2:6802/1234,v1:10.0.0.2:6803/1234]", "10.0.0.2", 6802),
        ("10.0.0.3:6801/99", "10.0.0.3", 6801),
        ("v1:127.0.0.1:24011/5", "127.0.0.1", 24011),
        ("[v2:[fd77::2]:6800/99,v1:[fd77::2]:6801/99]", "[fd77::2]", 6800),
    ])
    func readsAnOSDsAddress(text: String, host: String, port: Int) throws {
        let address = try #require(ClusterBenchRun.address(text))
        #expect(address.host == host && address.port == port)
    }

    @Test func readsTheToolsResults() {
        let rados = Data("hints = 1\n{\"total_time_run\":\"2.0\",\"bandwidth\":\"100.000000\",\"average_iops\":\"25\"}\n".utf8)
        #expect(abs((ClusterBench.radosBandwidth(rados) ?? 0) - 104.8576) < 1e-9)
        #expect(ClusterBench.radosBandwidth(Data("hints = 1\n".utf8)) == nil)
        let rbd = """
            bench  type write io_size 4096 io_threads 16 bytes 16777216 pattern random
              SEC       OPS   OPS/SEC   BYTES/SEC
                1      4096   4102.31    16 MiB/s
            elapsed: 1   ops: 4096   ops/sec: 4093.5   bytes/sec: 16 MiB/s
            """
        #expect(ClusterBench.rbdOpsPerSecond(rbd) == 4093.5)
        #expect(ClusterBench.rbdOpsPerSecond("no result") == nil)
    }

    /// The network stream over IPv4 and IPv6: the receiver drops a stranger's connection (wrong token) unread, counts
    /// the bench's stream and answers with the count; the sender's figure is that count.
    @Test(arguments: ["127.0.0.1", "[::1]"])
    func streamCountsWhatArrived(host: String) throws {
        let port = try #require(Ports.findFreeRange(count: 1))
        let received = Slots<Result<UInt64, ProvisionError>>(count: 1)
        let receiver = Thread {
            received.set(0, Result { () throws(ProvisionError) in
                try BenchStream.receive(address: host, port: port, token: "right-token-0123", until: Date().addingTimeInterval(20))
            })
        }
        receiver.start()
        // A stranger first: connects, sends something else, is dropped.
        var stranger: Int32?
        let by = Date().addingTimeInterval(10)
        while stranger == nil && Date() < by {
            stranger = Ports.openSocket(host: host, port: port) { connect($0, $1, $2) }
            if stranger == nil { usleep(50_000) }
        }
        let fd = try #require(stranger, "the receiver never listened on \(host) port \(port)")
        #expect(BenchStream.writeAll(fd, Array("wrong-token-0123".utf8) + [UInt8](repeating: 1, count: 4096)))
        var nothing = [UInt8](repeating: 0, count: 8)
        #expect(!BenchStream.readAll(fd, &nothing), "the stranger got an answer")
        close(fd)
        let sent = try BenchStream.send(host: host, port: port, token: "right-token-0123", seconds: 0.3,
                                        connectBy: Date().addingTimeInterval(10))
        received.waitUntilFull()
        let count = try #require(received.values[0]).get()
        #expect(sent.bytes == count && count >= UInt64(BenchStream.chunk), "sent \(sent), received \(count)")
        #expect(sent.seconds >= 0.3)
    }

    /// No receiver (the host's watch is not running): the sender gives up at its time and says what to look at; a
    /// receiver nobody sends to stops at its own.
    @Test func streamWithoutTheOtherSide() throws {
        let port = try #require(Ports.findFreeRange(count: 1))
        do {
            _ = try BenchStream.send(host: "127.0.0.1", port: port, token: "t", seconds: 1, connectBy: Date().addingTimeInterval(0.5))
            Issue.record("a stream was sent to a port nobody listens on")
        } catch {
            #expect(error.description.contains("nothing listened on 127.0.0.1 port \(port)")
                    && error.description.contains("aquarium-maintenance"), "\(error.description)")
        }
        do {
            _ = try BenchStream.receive(address: "127.0.0.1", port: port, token: "t", until: Date().addingTimeInterval(0.5))
            Issue.record("a receiver nobody sent to returned")
        } catch {
            #expect(error.description.contains("no stream with the bench's token came to 127.0.0.1 port \(port)"), "\(error.description)")
        }
        #expect(Ports.isFree(port), "the receiver left its port open")
    }

    /// What an operator reads: achieved, possible, efficiency; and the event's one line.
    @Test func reportsEfficiency() {
        let report = ClusterBenchReport(
            time: "2026-11-30T05:00:00.000Z", seconds: 10,
            disks: [.init(osd: 0, device: "/dev/sdb", sequentialReadMBps: 200, randomReadIOPS: 150),
                    .init(osd: 1, device: "/dev/sdc", sequentialReadMBps: 200, randomReadIOPS: 150)],
            peers: [.init(host: "node-02", address: "10.0.0.2:6800", roundTripMs: 0.4, streamMBps: 1170),
                    .init(host: "node-03", address: "10.0.0.3:6800", roundTripMs: 0.3, problem: "nothing listened")],
            pool: "aquarium-bench-1",
            replicas: 3, radosWriteMBps: 120, radosReadMBps: 400, rbdWriteIOPS: 900,
            disksReadMBps: 800, disksWriteMBps: 266.7, readEfficiency: 0.5, writeEfficiency: 0.45)
        #expect(report.text.contains("RADOS write      120 MB/s                267 MB/s          45%"), "\(report.text)")
        #expect(report.text.contains("node-02 10.0.0.2:6800: 0.4 ms, 1170 MB/s\n"), "\(report.text)")
        #expect(report.text.contains("node-03 10.0.0.3:6800: 0.3 ms, no stream: nothing listened\n"), "\(report.text)")
        #expect(report.summary == "RADOS write 120 MB/s (45% of the disks' 267 at 3 copies), read 400 MB/s (50% of 800), "
            + "RBD 4K random write 900 IOPS; 2 disk(s), 2 other host(s), round trip up to 0.4 ms, TCP stream at least "
            + "1170 MB/s, no stream to node-03")
    }
}
