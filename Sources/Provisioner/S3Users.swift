import ArgumentParser
import CommandSupport
import Exec
import Foundation
import JSONCoding
import Seed

/// The seed's S3 users (`cluster.services.rgw.users`), kept converged by the rgw step: each user exists with its own
/// keys (made by RGW on the node, written 0600 to `/var/lib/aquarium/s3-users/NAME.json`, never in the seed, reports,
/// events or bundles), its quota is what the seed says, and its buckets exist. Nothing is ever deleted: a user or
/// bucket that leaves the seed stays, with its data.
extension Provisioner {
    /// What `radosgw-admin user info` says of a user: its keys and its user-scope quota.
    struct RGWUserInfo: Decodable {
        struct Key: Decodable {
            var user: String?
            var accessKey: String?
            var secretKey: String?
            enum CodingKeys: String, CodingKey { case user, accessKey = "access_key", secretKey = "secret_key" }
        }
        struct Quota: Decodable, Equatable {
            var enabled: Bool
            var maxSize: Int64
            var maxObjects: Int64
            enum CodingKeys: String, CodingKey { case enabled, maxSize = "max_size", maxObjects = "max_objects" }
        }
        var keys: [Key]?
        var userQuota: Quota?
        enum CodingKeys: String, CodingKey { case keys, userQuota = "user_quota" }

        /// Each part read on its own: a field of another shape (another Ceph release) leaves only that part unknown.
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            keys = try? container.decodeIfPresent([Key].self, forKey: .keys)
            userQuota = try? container.decodeIfPresent(Quota.self, forKey: .userQuota)
        }

        static func parse(_ output: String) -> RGWUserInfo? { try? JSONDecoder().decode(RGWUserInfo.self, from: Data(output.utf8)) }

        /// The S3 keys of `user` (its own, else the first).
        func keys(of user: String) -> (access: String, secret: String)? {
            guard let key = keys?.first(where: { $0.user == user }) ?? keys?.first,
                  let access = key.accessKey, let secret = key.secretKey else { return nil }
            return (access, secret)
        }
    }

    /// The quota RGW must hold for `quota`'s hard limits (none: disabled; RGW's -1 is "no limit").
    static func rgwQuota(_ quota: Seed.S3Quota?) -> RGWUserInfo.Quota {
        guard let quota, quota.hasHardLimit else { return RGWUserInfo.Quota(enabled: false, maxSize: -1, maxObjects: -1) }
        return RGWUserInfo.Quota(enabled: true, maxSize: quota.maxSize.map { Int64(clamping: $0) } ?? -1,
                                 maxObjects: quota.maxObjects.map(Int64.init) ?? -1)
    }

    /// Whether RGW's quota is what the seed says (a disabled quota's limits do not matter).
    static func quotaMatches(_ current: RGWUserInfo.Quota?, _ wanted: RGWUserInfo.Quota) -> Bool {
        guard let current else { return false }
        if !wanted.enabled { return !current.enabled }
        return current == wanted
    }

    func userInfo(_ name: String) throws(ProvisionError) -> RGWUserInfo? {
        let info = try tools.run("radosgw-admin", ["user", "info", "--uid", name], timeout: 120, accepted: [0, 2, 22])
        guard info.status == 0 else { return nil }
        guard let decoded = RGWUserInfo.parse(info.output) else {
            throw .failed("radosgw-admin user info --uid \(name) printed something that is not a user")
        }
        return decoded
    }

    /// Converges every user of the seed; returns what changed, and a warning for each user at or over a soft limit.
    func s3Users(_ users: [Seed.S3User], endpoint: String,
                 httpsEndpoint: String? = nil) throws(ProvisionError) -> (actions: [String], warnings: [String]) {
        var actions: [String] = []
        var warnings: [String] = []
        for user in users {
            var info = try userInfo(user.name)
            if info == nil {
                let created = try tools.run("radosgw-admin", ["user", "create", "--uid", user.name, "--display-name", user.name],
                                            timeout: 120)
                info = RGWUserInfo.parse(created.output)
                actions.append("created the S3 user \(user.name)")
            }
            guard let keys = info?.keys(of: user.name) else {
                throw .failed("RGW has no S3 keys for the user \(user.name) (radosgw-admin user info --uid \(user.name))")
            }
            let credentials = S3Credentials(endpoint: endpoint, httpsEndpoint: httpsEndpoint, user: user.name,
                                            accessKey: keys.access, secretKey: keys.secret)
            guard let data = try? JSONCoding.encoder().encode(credentials) else { throw .failed("cannot encode the S3 credentials") }
            if try Files.write(data, to: layout.s3UserCredentialsFile(user.name), mode: 0o600) {
                actions.append("wrote \(layout.s3UserCredentialsFile(user.name))")
            }

            let wanted = Self.rgwQuota(user.quota)
            if !Self.quotaMatches(info?.userQuota, wanted) {
                try tools.run("radosgw-admin", ["quota", "set", "--quota-scope", "user", "--uid", user.name,
                                                "--max-size", String(wanted.maxSize), "--max-objects", String(wanted.maxObjects)])
                try tools.run("radosgw-admin", ["quota", wanted.enabled ? "enable" : "disable", "--quota-scope", "user", "--uid", user.name])
                actions.append(wanted.enabled ? "set the quota of \(user.name) (\(Self.quotaText(user.quota)))"
                                              : "removed the quota of \(user.name)")
            }

            if let quota = user.quota, quota.hasSoftLimit, let warning = try softQuotaWarning(user.name, quota) {
                logger.warning("\(warning)")
                events.append(ProvisionEvent(event: "s3.quota.soft", step: "rgw", detail: warning))
                warnings.append(warning)
            }

            let listed = try tools.run("radosgw-admin", ["bucket", "list", "--uid", user.name], timeout: 120)
            let owned = Set((try? JSONDecoder().decode([String].self, from: Data(listed.output.utf8))) ?? [])
            for bucket in user.buckets where !owned.contains(bucket) {
                try createBucket(bucket, credentials: credentials)
                actions.append("created the bucket \(bucket) of \(user.name)")
            }
        }
        return (actions, warnings)
    }

    /// What RGW counts for a user (`radosgw-admin user stats --sync-stats`: the bucket stats summed up now, not at
    /// RGW's next periodic sync).
    struct RGWUserStats: Decodable {
        struct Stats: Decodable {
            var size: UInt64
            var numObjects: Int
            enum CodingKeys: String, CodingKey { case size, numObjects = "num_objects" }
        }
        var stats: Stats
    }

    /// A warning when the user stores at least one of its soft limits (the hard limits are RGW's to enforce).
    func softQuotaWarning(_ user: String, _ quota: Seed.S3Quota) throws(ProvisionError) -> String? {
        let result = try tools.run("radosgw-admin", ["user", "stats", "--uid", user, "--sync-stats"], timeout: 120)
        guard let stats = try? JSONDecoder().decode(RGWUserStats.self, from: Data(result.output.utf8)).stats else {
            throw .failed("radosgw-admin user stats --uid \(user) printed no stats")
        }
        return Self.softQuotaWarning(user, quota, size: stats.size, objects: stats.numObjects)
    }

    static func softQuotaWarning(_ user: String, _ quota: Seed.S3Quota, size: UInt64, objects: Int) -> String? {
        var over: [String] = []
        if let soft = quota.softMaxSize, size >= soft {
            over.append("\(size) bytes (soft limit \(soft)" + (quota.maxSize.map { ", hard limit \($0))" } ?? ", no hard limit)"))
        }
        if let soft = quota.softMaxObjects, objects >= soft {
            over.append("\(objects) objects (soft limit \(soft)" + (quota.maxObjects.map { ", hard limit \($0))" } ?? ", no hard limit)"))
        }
        guard !over.isEmpty else { return nil }
        return "S3 user \(user) is at or over its soft quota: " + over.joined(separator: " and ")
            + "; raise the quota in the seed or have the user delete data"
    }

    static func quotaText(_ quota: Seed.S3Quota?) -> String {
        guard let quota else { return "none" }
        return [quota.maxSize.map { "max_size \($0) bytes" }, quota.maxObjects.map { "max_objects \($0)" }]
            .compactMap { $0 }.joined(separator: ", ")
    }

    static let emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// Creates `bucket` as its user through RGW's S3 API (buckets have no radosgw-admin command): curl signs the PUT
    /// with AWS Signature V4; the keys reach curl on its standard input (`-K -`), never on its command line.
    func createBucket(_ bucket: String, credentials: S3Credentials) throws(ProvisionError) {
        let config = "user = \"\(credentials.accessKey):\(credentials.secretKey)\"\n"
        let result: CommandResult
        do {
            // S3's SigV4 signs the payload's SHA-256 too (here of nothing); curl signs the header when it is given.
            result = try Command("curl", ["--silent", "--show-error", "--write-out", "\n%{http_code}",
                                          "--aws-sigv4", "aws:amz:us-east-1:s3", "-K", "-",
                                          "--header", "x-amz-content-sha256: " + Self.emptyPayloadSHA256, "--request", "PUT",
                                          "--max-time", "60", "--", credentials.endpoint + "/" + bucket])
                .run(input: Data(config.utf8), acceptedStatuses: Set(0...255))
        } catch { throw .failedBecause("cannot create the bucket \(bucket): curl did not run: \(error)", cause: error) }
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
        let code = lines.last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let body = lines.dropLast().joined(separator: "\n")
        let errorCode = body.range(of: "<Code>").flatMap { start in
            body.range(of: "</Code>", range: start.upperBound..<body.endIndex).map { String(body[start.upperBound..<$0.lowerBound]) }
        }
        switch code {
        case "200": return
        case "409":
            let owner = (try? tools.run("radosgw-admin", ["bucket", "stats", "--bucket", bucket], accepted: Set(0...255)))
                .flatMap { try? JSONSerialization.jsonObject(with: Data($0.output.utf8)) as? [String: Any] }?["owner"] as? String
            throw .refused("the bucket \(bucket) of S3 user \(credentials.user) already exists and belongs to "
                + "\(owner.map { "S3 user \($0)" } ?? "another S3 user"); bucket names are global: choose another name in the seed")
        default:
            throw .failed("cannot create the bucket \(bucket) of S3 user \(credentials.user) at \(credentials.endpoint): "
                + "curl exit \(result.status), HTTP \(code.isEmpty ? "none" : code)\(errorCode.map { " " + $0 } ?? "") "
                + result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// `aquarium-provision s3-credentials [USER]`: the endpoint and keys of an S3 user of the seed (or of the
/// Provisioner's administrator), from this node's 0600 files. A secret: printed only on request, never logged.
public struct S3CredentialsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "s3-credentials",
        abstract: "Print an S3 user's endpoint and keys (a secret): a user of cluster.services.rgw.users, or the administrator.",
        discussion: """
            The keys are made by RGW on the node that runs the services and kept there (mode 0600), never in the seed, \
            reports, events or support bundles.

            Examples:
              aquarium-provision s3-credentials backup         # endpoint and keys
              aquarium-provision s3-credentials backup --json  # for aws, s3cmd, rclone
              aquarium-provision s3-credentials                # aquarium-admin
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions
    @Argument(help: "The S3 user (default: the administrator, \(Seed.S3User.administrator)).") public var user: String?
    @Flag(name: .long, help: "Print JSON.") public var json = false

    public init() {}

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        let name = user ?? Seed.S3User.administrator
        let path = name == Seed.S3User.administrator ? layout.s3CredentialsFile : layout.s3UserCredentialsFile(name)
        guard !name.contains("/"), let data = FileManager.default.contents(atPath: path) else {
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: layout.s3UsersDirectory)) ?? [])
                .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
            throw ProvisionError.invalidInput("no S3 user \(name) on this node (\(path) is missing); "
                + (known.isEmpty ? "no seed S3 users here: add them under cluster.services.rgw.users and run the Provisioner, on the node that runs the services"
                                 : "the seed's S3 users here: \(known.joined(separator: ", "))"))
        }
        guard let credentials = try? JSONDecoder().decode(S3Credentials.self, from: data) else {
            throw ProvisionError.failed("\(path) is not an S3 credentials file; the next Provisioner run rewrites it")
        }
        if json {
            print(String(decoding: try JSONCoding.encoder().encode(credentials), as: UTF8.self))
        } else {
            print("endpoint:   \(credentials.endpoint)")
            if let https = credentials.httpsEndpoint { print("https:      \(https)") }
            print("user:       \(credentials.user)\naccess key: \(credentials.accessKey)\nsecret key: \(credentials.secretKey)")
        }
    }
}
