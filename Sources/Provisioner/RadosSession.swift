import Foundation
import Logging

/// One connection to the cluster's monitors for a whole run, through librados (`librados.so.2`, loaded when first
/// needed: the Ceph packages that run the daemons install it). The `ceph` command-line tool is a Python program that
/// starts, reads the configuration, authenticates and asks the monitor for its command table on every call: about
/// 0.3 s each on this machine, and a run asks the cluster dozens of questions. Through this connection a question
/// costs a round trip to the monitor.
///
/// Only read-only questions without arguments go this way (`RadosSession.monitorQuery`); everything else, and every
/// question when librados cannot be loaded or the monitors cannot be reached, goes through the `ceph` tool as before.
/// The connection acts as the same client, with the same configuration file and keyring, as the tool would.
public final class RadosSession: @unchecked Sendable {
    public let cluster: String
    public let configPath: String
    /// `client.admin` or the node's own entity.
    public let client: String
    let logger: Logger
    private let lock = NSLock()
    private var handle: UnsafeMutableRawPointer?
    /// When the last attempt to connect failed: the next is not tried before `retryAfter` seconds.
    private var failedAt: Date?
    /// The connection's `rados_mon_op_timeout`.
    private var operationTimeout = RadosSession.commandTimeout
    static let retryAfter: TimeInterval = 5
    /// Seconds to reach a monitor and authenticate, and for one command.
    static let connectTimeout = 10
    public static let commandTimeout = 60
    /// Seconds for one object write (a pool whose placement groups are not active holds it).
    public static let objectTimeout = 10

    public init(cluster: String, configPath: String, client: String?, logger: Logger) {
        self.cluster = cluster
        self.configPath = configPath
        self.client = client ?? "client.admin"
        self.logger = logger
    }

    deinit { close() }

    /// Monitor commands a run asks often that take no arguments and change nothing, by the words the `ceph` tool takes.
    static let monitorQueries: Set<[String]> = [
        ["osd", "dump"], ["osd", "tree"], ["osd", "pool", "ls"], ["config", "dump"], ["fs", "ls"], ["fs", "dump"],
        ["mgr", "dump"], ["mgr", "stat"], ["mgr", "module", "ls"], ["quorum_status"], ["health"], ["df"], ["status"],
        ["osd", "metadata"],
    ]

    /// Manager commands asked the same way (`ceph` sends them to the active manager).
    static let managerQueries: Set<[String]> = [["telemetry", "status"]]

    /// The JSON command the `ceph` tool would send for `arguments` with `--format json`, when it is one of
    /// `monitorQueries` or `managerQueries` (or `osd pool ls detail`); nil otherwise.
    public static func monitorQuery(_ arguments: [String]) -> String? {
        if monitorQueries.contains(arguments) || managerQueries.contains(arguments) {
            return encode(["prefix": arguments.joined(separator: " "), "format": "json"])
        }
        if arguments == ["osd", "pool", "ls", "detail"] {
            return encode(["prefix": "osd pool ls", "detail": "detail", "format": "json"])
        }
        return nil
    }

    /// The JSON command the `ceph` tool sends for `arguments`, for the monitor commands a run gives most (the
    /// config-key store, `auth get`, creating pools and OSDs, `config set`), exactly as the tool would send them;
    /// nil for anything else, which then goes to the tool itself. Numbers are JSON numbers, as the tool sends them.
    public static func monitorCommand(_ arguments: [String]) -> String? {
        var words = arguments
        var fields: [String: Any] = [:]
        if words.count >= 2, words[words.count - 2] == "--format", words.last == "json" {
            fields["format"] = "json"
            words.removeLast(2)
        }
        if let query = monitorQuery(words), fields["format"] != nil { return query }
        // Any other option (`-o FILE`, `-i FILE`, `--connect-timeout`) is the tool's business: the tool runs.
        let options = words.count >= 2 && Array(words.suffix(2)) == ["-i", "-"] ? words.dropLast(2) : words[...]
        if options.contains(where: { $0.hasPrefix("-") }) { return nil }
        let input = words.count >= 2 && Array(words.suffix(2)) == ["-i", "-"]
        if input { words.removeLast(2) }
        switch words.count {
        case 2 where input && words == ["config", "assimilate-conf"]:
            // The settings come as the command's input, as with the tool's `-i -`.
            fields["prefix"] = "config assimilate-conf"
        case 3 where words[0] == "config-key" && ["get", "exists", "rm"].contains(words[1]):
            fields["prefix"] = "config-key " + words[1]
            fields["key"] = words[2]
        case 4 where words[0] == "config-key" && words[1] == "set":
            fields["prefix"] = "config-key set"
            fields["key"] = words[2]
            fields["val"] = words[3]
        case 3 where words[0] == "auth" && ["get", "get-key"].contains(words[1]):
            fields["prefix"] = "auth " + words[1]
            fields["entity"] = words[2]
        case 3... where words[0] == "auth" && words[1] == "get-or-create" && (words.count - 3) % 2 == 0:
            // Capabilities come in pairs (service, grant), sent as one list.
            fields["prefix"] = "auth get-or-create"
            fields["entity"] = words[2]
            if words.count > 3 { fields["caps"] = Array(words.dropFirst(3)) }
        case 5 where words[0] == "config" && words[1] == "set":
            fields["prefix"] = "config set"
            fields["who"] = words[2]
            fields["name"] = words[3]
            fields["value"] = words[4]
        case 4...5 where words[0] == "osd" && words[1] == "pool" && words[2] == "create":
            fields["prefix"] = "osd pool create"
            fields["pool"] = words[3]
            if words.count == 5 {
                guard let pgs = Int(words[4]), pgs > 0 else { return nil }
                fields["pg_num"] = pgs
            }
        case 6 where Array(words.prefix(4)) == ["osd", "pool", "application", "enable"]:
            fields["prefix"] = "osd pool application enable"
            fields["pool"] = words[4]
            fields["app"] = words[5]
        case 3...4 where input && words[0] == "osd" && words[1] == "new":
            // The secrets come as the command's input.
            fields["prefix"] = "osd new"
            fields["uuid"] = words[2]
            if words.count == 4 {
                guard let id = Int(words[3]), id >= 0 else { return nil }
                fields["id"] = id
            }
        default:
            return nil
        }
        return encode(fields)
    }

    /// An object write the run gives the `rados` tool (`--rados_osd_op_timeout 10 -p POOL append|put OBJECT -`, the
    /// data on its standard input), when its time limit is the session's; nil for anything else.
    public static func objectWrite(_ arguments: [String]) -> (pool: String, object: String, append: Bool)? {
        guard arguments.count == 7, arguments[0] == "--rados_osd_op_timeout", arguments[1] == String(objectTimeout),
              arguments[2] == "-p", ["append", "put"].contains(arguments[4]), arguments[6] == "-" else { return nil }
        return (arguments[3], arguments[5], arguments[4] == "append")
    }

    /// Appends `data` to the object, or replaces the object with it. Nil when there is no connection; otherwise 0 or
    /// a negative errno.
    public func write(pool: String, object: String, data: Data, append: Bool) -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        guard let library = RadosLibrary.shared, let cluster = connectedHandle(library) else { return nil }
        var context: UnsafeMutableRawPointer?
        let opened = library.ioctxCreate(cluster, pool, &context)
        guard opened == 0, let context else { return opened < 0 ? opened : -EIO }
        defer { library.ioctxDestroy(context) }
        return data.withUnsafeBytes { bytes in
            let buffer = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
            return append ? library.append(context, object, buffer, bytes.count) : library.writeFull(context, object, buffer, bytes.count)
        }
    }

    static func encode(_ fields: [String: Any]) -> String? {
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    public enum Answer: Equatable, Sendable {
        /// The monitor's reply and its message.
        case output(Data, message: String)
        /// The monitor refused the command: the error number and the monitor's message (the error's name when it gave none).
        case refused(code: Int32, message: String)
    }

    /// Sends `command` (JSON) to the monitors, or the active manager. Nil when there is no connection (librados
    /// missing, monitors not reachable): the caller asks the `ceph` tool instead.
    public func monitorCommand(_ command: String, input: Data? = nil, timeout: Int = RadosSession.commandTimeout,
                               manager: Bool = false) -> Answer? {
        lock.lock()
        defer { lock.unlock() }
        guard let library = RadosLibrary.shared, let cluster = connectedHandle(library) else { return nil }
        // librados applies a changed command timeout at once.
        if timeout != operationTimeout, library.confSet(cluster, "rados_mon_op_timeout", String(timeout)) == 0 {
            operationTimeout = timeout
        }
        var outbuf: UnsafeMutablePointer<CChar>?
        var outlen = 0
        var outs: UnsafeMutablePointer<CChar>?
        var outslen = 0
        let inbuf = input ?? Data()
        let status: Int32 = command.withCString { text in
            var commands: [UnsafePointer<CChar>?] = [text]
            return commands.withUnsafeMutableBufferPointer { list in
                inbuf.withUnsafeBytes { bytes in
                    (manager ? library.mgrCommand : library.monCommand)(
                        cluster, list.baseAddress, 1, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count,
                        &outbuf, &outlen, &outs, &outslen)
                }
            }
        }
        defer {
            if let outbuf { library.bufferFree(outbuf) }
            if let outs { library.bufferFree(outs) }
        }
        let output = outbuf.map { Data(bytes: $0, count: outlen) } ?? Data()
        let message = outs.map { String(decoding: Data(bytes: $0, count: outslen), as: UTF8.self) } ?? ""
        if status == -ETIMEDOUT || status == -ENOTCONN || status == -ESHUTDOWN {
            // The monitors went away: let the tool try (and fail with its own message), connect again later.
            disconnect(library)
            failedAt = Date()
            return nil
        }
        return status < 0 ? .refused(code: -status, message: message.isEmpty ? String(cString: strerror(-status)) : message)
            : .output(output, message: message)
    }

    /// Disconnects; the next command connects again.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        if let library = RadosLibrary.shared { disconnect(library) }
    }

    private func disconnect(_ library: RadosLibrary) {
        if let handle { library.shutdown(handle) }
        handle = nil
    }

    private func connectedHandle(_ library: RadosLibrary) -> UnsafeMutableRawPointer? {
        if let handle { return handle }
        if let failedAt, Date().timeIntervalSince(failedAt) < Self.retryAfter { return nil }
        guard FileManager.default.fileExists(atPath: configPath) else { return nil }
        var cluster: UnsafeMutableRawPointer?
        guard library.create2(&cluster, self.cluster, client, 0) == 0, let cluster else {
            failedAt = Date()
            return nil
        }
        // The same configuration as the tool; no admin socket of our own (the path is per client name, and a `ceph`
        // tool run meanwhile would find it taken), and bounded waits.
        let settings: [(String, String)] = [
            ("admin_socket", ""), ("client_mount_timeout", String(Self.connectTimeout)),
            ("rados_mon_op_timeout", String(Self.commandTimeout)), ("rados_osd_op_timeout", String(Self.objectTimeout)),
            ("log_to_stderr", "false"), ("err_to_stderr", "false"),
        ]
        var status = library.confReadFile(cluster, configPath)
        for (option, value) in settings where status == 0 { status = library.confSet(cluster, option, value) }
        if status == 0 { status = library.connect(cluster) }
        guard status == 0 else {
            logger.debug("librados could not connect as \(client) with \(configPath): \(String(cString: strerror(-status)))")
            library.shutdown(cluster)
            failedAt = Date()
            return nil
        }
        logger.debug("connected to the monitors through librados as \(client)")
        failedAt = nil
        operationTimeout = Self.commandTimeout
        handle = cluster
        return cluster
    }
}

/// The few librados functions the session calls, looked up in `librados.so.2` at run time: the tools are built and
/// tested on machines without Ceph's development files, and FirstBoot and the image builder never need it.
struct RadosLibrary: @unchecked Sendable {
    typealias Create2 = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<CChar>?,
                                        UnsafePointer<CChar>?, UInt64) -> Int32
    typealias ConfReadFile = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Int32
    typealias ConfSet = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Int32
    typealias Connect = @convention(c) (UnsafeMutableRawPointer?) -> Int32
    typealias Shutdown = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias MonCommand = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafePointer<CChar>?>?, Int,
                                           UnsafePointer<CChar>?, Int,
                                           UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, UnsafeMutablePointer<Int>?,
                                           UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, UnsafeMutablePointer<Int>?) -> Int32
    typealias BufferFree = @convention(c) (UnsafeMutablePointer<CChar>?) -> Void
    typealias IoctxCreate = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?,
                                            UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    typealias IoctxDestroy = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias Write = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int) -> Int32

    let create2: Create2
    let confReadFile: ConfReadFile
    let confSet: ConfSet
    let connect: Connect
    let shutdown: Shutdown
    let monCommand: MonCommand
    let mgrCommand: MonCommand
    let bufferFree: BufferFree
    let ioctxCreate: IoctxCreate
    let ioctxDestroy: IoctxDestroy
    let append: Write
    let writeFull: Write

    /// Nil when librados is not installed (or `AQUARIUM_NO_LIBRADOS` is set: every question then goes to the tool).
    static let shared: RadosLibrary? = load()

    static func load() -> RadosLibrary? {
        if ProcessInfo.processInfo.environment["AQUARIUM_NO_LIBRADOS"] != nil { return nil }
        guard let library = dlopen("librados.so.2", RTLD_NOW | RTLD_LOCAL) else { return nil }
        func symbol<T>(_ name: String, _ type: T.Type) -> T? {
            dlsym(library, name).map { unsafeBitCast($0, to: type) }
        }
        guard let create2 = symbol("rados_create2", Create2.self),
              let confReadFile = symbol("rados_conf_read_file", ConfReadFile.self),
              let confSet = symbol("rados_conf_set", ConfSet.self),
              let connect = symbol("rados_connect", Connect.self),
              let shutdown = symbol("rados_shutdown", Shutdown.self),
              let monCommand = symbol("rados_mon_command", MonCommand.self),
              let mgrCommand = symbol("rados_mgr_command", MonCommand.self),
              let bufferFree = symbol("rados_buffer_free", BufferFree.self),
              let ioctxCreate = symbol("rados_ioctx_create", IoctxCreate.self),
              let ioctxDestroy = symbol("rados_ioctx_destroy", IoctxDestroy.self),
              let append = symbol("rados_append", Write.self),
              let writeFull = symbol("rados_write_full", Write.self) else { return nil }
        return RadosLibrary(create2: create2, confReadFile: confReadFile, confSet: confSet, connect: connect,
                            shutdown: shutdown, monCommand: monCommand, mgrCommand: mgrCommand, bufferFree: bufferFree,
                            ioctxCreate: ioctxCreate, ioctxDestroy: ioctxDestroy, append: append, writeFull: writeFull)
    }
}
