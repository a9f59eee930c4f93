import Foundation
import JSONCoding
import Synchronization

/// The bench's network throughput: one TCP stream from the benching node to each other host, taken by that host's
/// `maintenance watch` (the aquarium-maintenance service), which the bench asks through an object `bench.HOST` in
/// the `.aquarium` pool. The stream starts with the request's token (a stranger's connection is dropped unread); the
/// receiver counts what arrives until the sender closes its side, and answers with the count, so the rate is what
/// reached the other host, not what left this one.
public struct BenchStreamRequest: Codable, Equatable, Sendable {
    /// The host asked to receive, its address (its OSDs' public one, which it listens on) and the port.
    public var host: String
    public var address: String
    public var port: Int
    public var token: String
    /// Seconds since 1970 after which the receiver stops waiting for the stream.
    public var until: Double
    public var by: String

    /// TCP port the receivers listen on, for the bench's few seconds only: above Ceph's 6800-7300.
    public static let port = 7399
}

public enum BenchStream {
    static let chunk = 1 << 20

    /// Sends to `host:port` for `seconds` after the token; the connection is tried until `connectBy` (the receiver
    /// starts listening at its watch's next round). Returns the bytes the receiver counted and the seconds from the
    /// first byte to its answer.
    public static func send(host: String, port: Int, token: String, seconds: Double,
                            connectBy: Date) throws(ProvisionError) -> (bytes: UInt64, seconds: Double) {
        var connected: Int32?
        repeat {
            connected = Ports.openSocket(host: host, port: port) { connect($0, $1, $2) }
            if connected == nil { usleep(200_000) }
        } while connected == nil && Date() < connectBy
        guard let fd = connected else {
            throw .failed("nothing listened on \(host) port \(port) by \(Self.clock(connectBy)): is the host's "
                + "aquarium-maintenance service (`aquarium-provision maintenance watch`) running?")
        }
        defer { close(fd) }
        setTimeout(fd, SO_SNDTIMEO, seconds: 30)
        setTimeout(fd, SO_RCVTIMEO, seconds: 30)
        let buffer = [UInt8](repeating: 0x61, count: chunk)
        let start = Date()
        guard writeAll(fd, Array(token.utf8)) else { throw .failed("\(host) port \(port) closed the stream: \(errnoText())") }
        while Date().timeIntervalSince(start) < seconds {
            guard writeAll(fd, buffer) else { throw .failed("\(host) port \(port) closed the stream: \(errnoText())") }
        }
        shutdown(fd, Int32(SHUT_WR))
        var answer = [UInt8](repeating: 0, count: 8)
        guard readAll(fd, &answer) else { throw .failed("\(host) port \(port) did not say what it received: \(errnoText())") }
        let elapsed = Date().timeIntervalSince(start)
        let bytes = answer.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        return (bytes, elapsed)
    }

    /// Listens on `address:port` until `until` for one stream that starts with `token` (others are dropped), counts
    /// its bytes until the sender's end, answers with the count and returns it.
    public static func receive(address: String, port: Int, token: String, until: Date) throws(ProvisionError) -> UInt64 {
        guard let listener = Ports.openSocket(host: address, port: port, { fd, address, length in
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            return bind(fd, address, length) == 0 ? listen(fd, 4) : -1
        }) else {
            throw .failed("cannot listen on \(address) port \(port): \(errnoText())")
        }
        defer { close(listener) }
        let expected = Array(token.utf8)
        while true {
            let left = until.timeIntervalSinceNow
            guard left > 0 else { throw .failed("no stream with the bench's token came to \(address) port \(port) by \(Self.clock(until))") }
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(min(left, 3600) * 1000)) > 0 else { continue }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            setTimeout(fd, SO_RCVTIMEO, seconds: 30)
            setTimeout(fd, SO_SNDTIMEO, seconds: 30)
            var presented = [UInt8](repeating: 0, count: expected.count)
            guard readAll(fd, &presented), presented == expected else { continue }
            var buffer = [UInt8](repeating: 0, count: chunk)
            var total: UInt64 = 0
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, chunk) }
                if count == 0 { break }
                guard count > 0 else { throw .failed("the stream to \(address) port \(port) broke: \(errnoText())") }
                total += UInt64(count)
            }
            let answer = (0..<8).map { UInt8(truncatingIfNeeded: total >> (8 * UInt64($0))) }
            guard writeAll(fd, answer) else { throw .failed("cannot answer the bench on \(address) port \(port): \(errnoText())") }
            return total
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    static func readAll(_ fd: Int32, _ bytes: inout [UInt8]) -> Bool {
        var offset = 0
        let total = bytes.count
        while offset < total {
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, total - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            offset += count
        }
        return true
    }

    static func setTimeout(_ fd: Int32, _ option: Int32, seconds: Int) {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    static func clock(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// Requests the watch has taken in this process, so that it does not listen again for one it served.
private let servedBenchTokens = Mutex<Set<String>>([])

extension Operations {
    /// Asks each of `peers` (host, address) to take a stream; returns the requests (removed by `endBenchStreams`).
    func requestBenchStreams(_ peers: [(host: String, address: String)], seconds: Double) throws(ProvisionError) -> [BenchStreamRequest] {
        // Every receiver listens from its watch's next round until all streams could have been sent.
        let until = Date().addingTimeInterval(30 + Double(peers.count) * (seconds + 15)).timeIntervalSince1970
        var requests: [BenchStreamRequest] = []
        for peer in peers {
            let token = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            let request = BenchStreamRequest(host: peer.host, address: peer.address, port: BenchStreamRequest.port, token: token,
                                             until: until, by: localHost)
            guard let data = try? JSONCoding.encoder(pretty: false).encode(request) else { throw .failed("cannot encode the bench request") }
            try writeObject(Self.flagObject("bench", host: peer.host), data)
            requests.append(request)
        }
        return requests
    }

    /// Removes the bench's requests (best effort: a request past its time is ignored by the receivers anyway).
    func endBenchStreams(_ requests: [BenchStreamRequest]) {
        for request in requests { try? removeFlag("bench", host: request.host) }
    }

    /// The watch's part: takes the stream a bench asked this node for (once per request, while it is current).
    /// Returns what it did, nil when there was nothing to take.
    func serveBenchRequest() -> String? {
        guard let data = try? readObject(Self.flagObject("bench", host: localHost)),
              let request = try? JSONDecoder().decode(BenchStreamRequest.self, from: data),
              request.host == localHost, Date().timeIntervalSince1970 < request.until,
              servedBenchTokens.withLock({ $0.insert(request.token).inserted }) else { return nil }
        do {
            let start = Date()
            let bytes = try BenchStream.receive(address: request.address, port: request.port, token: request.token,
                                                until: Date(timeIntervalSince1970: request.until))
            return "took the network stream of \(request.by)'s bench: \(bytes / 1_000_000) MB in "
                + String(format: "%.1f s", Date().timeIntervalSince(start))
        } catch {
            logger.warning("bench stream from \(request.by): \(error.description)")
            return nil
        }
    }
}
