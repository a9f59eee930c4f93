import Exec
import Foundation
import Logging

/// Ceph's command-line tools, always with this cluster's name and configuration file, each with a time limit so a
/// monitor that does not answer cannot hang a run.
public struct CephTools: Sendable {
    public let layout: Layout
    public let logger: Logger
    /// The client `ceph` acts as when not the default `client.admin` (a joined node: `client.aquarium-join`).
    public let client: String?
    /// The run's connection to the monitors for the questions it asks most (`RadosSession`); nil: always the tool.
    public let session: RadosSession?

    /// `connected`: answer read-only monitor queries through one librados connection (a Provisioner run) instead of
    /// starting the `ceph` tool for each.
    public init(layout: Layout, logger: Logger, client: String? = nil, connected: Bool = false) {
        self.layout = layout
        self.logger = logger
        self.client = client == "client.admin" ? nil : client
        self.session = connected ? RadosSession(cluster: layout.cluster, configPath: layout.cephConf, client: client, logger: logger)
            : nil
    }

    /// `tool --cluster NAME -c CONF arguments...`, stopped (with whatever it started) after `timeout` seconds, killed
    /// 10 s later. The `ceph` and `rados` tools get `--name` when this node acts as another client than the admin (the daemons'
    /// own tools never do).
    public func command(_ tool: String, _ arguments: [String], timeout: Int = 120) -> Command {
        let name = tool == "ceph" || tool == "rados" ? client.map { ["--name", $0] } ?? [] : []
        return Command(tool, ["--cluster", layout.cluster, "-c", layout.cephConf] + name + arguments,
                       timeout: Double(timeout))
    }

    @discardableResult
    public func run(_ tool: String, _ arguments: [String], input: Data? = nil, timeout: Int = 120,
                    accepted: Set<Int32> = [0]) throws(ProvisionError) -> CommandResult {
        let command = command(tool, arguments, timeout: timeout)
        if tool == "rados", let session, let input, let write = RadosSession.objectWrite(arguments),
           let status = session.write(pool: write.pool, object: write.object, data: input, append: write.append) {
            logger.debug("wrote \(write.pool)/\(write.object) through librados: \(status)")
            guard status == 0 else {
                // As the tool says it (and exits 1).
                throw .failed(CommandError(command: command, status: 1, standardError: "error writing \(write.pool)/\(write.object): "
                    + "(\(-status)) \(String(cString: strerror(-status)))", reason: nil).description)
            }
            return CommandResult(command: command, status: 0, standardOutput: Data(), standardError: Data())
        }
        if tool == "ceph", let session, let json = RadosSession.monitorCommand(arguments),
           let answer = session.monitorCommand(json, input: input, timeout: timeout) {
            // As the tool would have ended: its exit status is the error number, the reply on standard output and the
            // monitor's message on standard error.
            logger.debug("asked the monitor \(json)")
            var result = CommandResult(command: command, status: 0, standardOutput: Data(), standardError: Data())
            switch answer {
            case .output(let data, let message):
                result.standardOutput = data
                result.standardError = Data(message.utf8)
            case .refused(let code, let message):
                result.status = code
                result.standardError = Data(message.utf8)
            }
            guard accepted.contains(result.status) else {
                throw .failed(CommandError(command: command, status: result.status, standardError: result.errorOutput,
                                           reason: nil).description)
            }
            return result
        }
        logger.debug("running \(command)")
        do {
            return try command.run(input: input, acceptedStatuses: accepted)
        } catch {
            if error.timedOut {
                throw .failed("\(tool) \(arguments.prefix(3).joined(separator: " ")) did not finish within \(timeout) s; "
                    + "is the monitor up? See \(layout.cephLog)")
            }
            throw .failed(error.description)
        }
    }

    /// `ceph ARGS --format json`, decoded as `type` (see `CephJSON`): nil when the JSON has another shape; throws when
    /// the command fails or prints no JSON.
    public func json<T: Decodable>(_ type: T.Type, _ arguments: [String], timeout: Int = 60) throws(ProvisionError) -> T? {
        if let session, let query = RadosSession.monitorQuery(arguments),
           let answer = session.monitorCommand(query, timeout: timeout,
                                               manager: RadosSession.managerQueries.contains(arguments)) {
            switch answer {
            case .output(let data, _):
                guard case .success(let value) = CephJSON.decode(type, from: data) else {
                    throw .failed("ceph \(arguments.joined(separator: " ")) answered no JSON: \(String(decoding: data.prefix(200), as: UTF8.self))")
                }
                return value
            case .refused(let code, let message):
                throw .failed("ceph \(arguments.joined(separator: " ")) failed: \(message) (error \(code))")
            }
        }
        let result = try run("ceph", arguments + ["--format", "json"], timeout: timeout)
        guard case .success(let value) = CephJSON.decode(type, from: result.standardOutput) else {
            throw .failed("ceph \(arguments.joined(separator: " ")) printed no JSON: \(result.output.prefix(200))")
        }
        return value
    }

    /// Polls `condition` until it holds or `seconds` pass; errors inside count as "not yet".
    public static func wait(_ what: String, seconds: Double, interval: Double = 0.5,
                            _ condition: () throws -> Bool) throws(ProvisionError) {
        let deadline = Date().addingTimeInterval(seconds)
        var lastError = ""
        while true {
            do {
                if try condition() { return }
            } catch {
                lastError = "\(error)"
            }
            if Date() > deadline {
                throw .failed("timed out after \(Int(seconds)) s waiting for \(what)"
                    + (lastError.isEmpty ? "" : " (last error: \(lastError.prefix(300)))"))
            }
            usleep(useconds_t(interval * 1_000_000))
        }
    }
}

/// A bluestore label as `ceph-bluestore-tool show-label` prints it.
public struct BluestoreLabel: Equatable, Sendable {
    public var osdUUID: String
    public var clusterFSID: String
    public var whoami: Int?
    public var mkfsDone: Bool

    public static func read(device: String) -> BluestoreLabel? {
        guard let result = try? Command("ceph-bluestore-tool", ["show-label", "--dev", device]).run(),
              // By device path; one device asked, one label.
              case .success(let labels?) = CephJSON.decode([String: CephJSON.BluestoreLabel].self, from: result.standardOutput),
              let label = labels.values.first else { return nil }
        guard let uuid = label.osdUUID, let fsid = label.cephFSID else { return nil }
        return BluestoreLabel(osdUUID: uuid, clusterFSID: fsid, whoami: label.whoami.flatMap { Int($0) },
                              mkfsDone: label.mkfsDone == "yes")
    }
}
