import Foundation
@testable import Seed
import Testing

/// The value parsers on their own: sizes, addresses, names, hashes, keys.
@Suite("Seed value syntax")
struct ValueTests {
    static let addressCases: [(String, Bool)] = [
        ("10.0.0.1", true), ("255.255.255.255", true), ("fd00::1", true), ("::", true), ("::ffff:10.0.0.1", true),
        ("10.0.0.256", false), ("10.0.0", false), ("010.0.0.1", false), ("fe80::1%eth0", false), ("10.0.0.1 ", false),
        ("", false), ("fd00:::1", false), ("1.2.3.4/24", false), ("0x0a.0.0.1", false),
    ]

    static let hostnameCases: [(String, Bool)] = [
        ("node-01", true), ("a", true), ("node-01.rack-3.example.org", true), ("1node", true), ("xn--bcher-kva", true),
        ("Node", false), ("node_01", false), ("-node", false), ("node-", false), ("node..x", false), (".node", false),
        ("node.", false), ("10.0.0.1", false), ("node.123", false), ("", false), ("node 01", false),
        (String(repeating: "a", count: 63), true), (String(repeating: "a", count: 64), false),
        (Array(repeating: String(repeating: "a", count: 50), count: 5).joined(separator: "."), false),
        (Array(repeating: String(repeating: "a", count: 50), count: 4).joined(separator: "."), true),
        (Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: "."), false),
    ]

    static let userNameCases: [(String, Bool)] = [
        ("aquarium", true), ("ops_team-2", true), ("a", true), (String(repeating: "u", count: 32), true),
        (String(repeating: "u", count: 33), false), ("Ops", false), ("2ops", false), ("_ops", false), ("ops.x", false),
        ("root", false), ("systemd-network", false), ("ceph", false), ("", false), ("ops;rm", false),
    ]

    static let passwordHashCases: [(String, Bool)] = [
        (Fixture.yescryptHash, true), (Fixture.sha512Hash, true), (Fixture.sha512RoundsHash, true),
        ("hunter2", false), ("$1$abc$def", false), ("$5$abc$def", false), ("$2b$10$abcdefghijklmnopqrstuv", false),
        ("$6$", false), ("$y$j9T$salt$short", false), (Fixture.sha512Hash + "x", false), ("!", false), ("*", false),
        ("$6$rounds=x$abcdefgh$" + String(repeating: "a", count: 86), false),
        ("$6$salt:x$" + String(repeating: "a", count: 86), false),
    ]

    static let sshKeyCases: [(String, Bool)] = [
        (Fixture.ed25519Key, true), (Fixture.rsaKey, true), (Fixture.ecdsaKey, true),
        ("ssh-ed25519 " + Fixture.ed25519Blob, true), ("ssh-ed25519  " + Fixture.ed25519Blob + "  two  spaces", true),
        ("ssh-ed25519", false), ("ssh-ed25519 AAAA", false), ("ssh-rsa " + Fixture.ed25519Blob, false),
        ("ssh-ed25519 " + String(Fixture.ed25519Blob.dropLast(4)), false), ("ssh-ed25519 " + Fixture.ed25519Blob + "=", false),
        ("no-pty ssh-ed25519 " + Fixture.ed25519Blob, false), ("", false),
        ("ssh-ed25519 " + Fixture.ed25519Blob + " comment\u{1b}[31m", false),
    ]

    struct SizeCase: Sendable, CustomTestStringConvertible {
        let text: String
        let bytes: UInt64?
        var testDescription: String { "'\(text)'" }
    }

    @Test("sizes", arguments: [
        SizeCase(text: "10GiB", bytes: 10_737_418_240), SizeCase(text: "2TB", bytes: 2_000_000_000_000),
        SizeCase(text: "1.92TB", bytes: 1_920_000_000_000), SizeCase(text: "512 MiB", bytes: 536_870_912),
        SizeCase(text: "1B", bytes: 1), SizeCase(text: "1kB", bytes: 1000), SizeCase(text: "1KiB", bytes: 1024),
        SizeCase(text: "0.5KiB", bytes: 512), SizeCase(text: "16TiB", bytes: 17_592_186_044_416),
        SizeCase(text: "16777215TiB", bytes: 18_446_742_974_197_923_840),
        SizeCase(text: "16777216TiB", bytes: nil), SizeCase(text: "1.5B", bytes: nil), SizeCase(text: "10", bytes: nil),
        SizeCase(text: "10G", bytes: nil), SizeCase(text: "10gib", bytes: nil), SizeCase(text: "GiB", bytes: nil),
        SizeCase(text: "1.2345TB", bytes: nil), SizeCase(text: "-1GB", bytes: nil), SizeCase(text: "1  GB", bytes: nil),
        SizeCase(text: "", bytes: nil), SizeCase(text: "1.TB", bytes: nil),
    ])
    func sizes(_ testCase: SizeCase) {
        switch SeedSyntax.parseSize(testCase.text) {
        case .success(let bytes): #expect(bytes == testCase.bytes)
        case .failure(let problem): #expect(testCase.bytes == nil, "\(problem.message)")
        }
    }

    @Test("IP addresses are strict", arguments: ValueTests.addressCases)
    func addresses(_ text: String, _ valid: Bool) {
        #expect((IPAddress(text) != nil) == valid)
    }

    @Test("networks and containment")
    func networks() throws {
        let network = try #require(IPNetwork("10.1.0.0/24"))
        #expect(network.contains(try #require(IPAddress("10.1.0.254"))))
        #expect(!network.contains(try #require(IPAddress("10.1.1.1"))))
        #expect(!network.contains(try #require(IPAddress("fd00::1"))))
        #expect(IPNetwork("10.1.0.1/24") == nil)
        #expect(IPNetwork("10.1.0.0/33") == nil)
        #expect(IPNetwork("10.1.0.0/024") == nil)
        #expect(IPNetwork("fd00:1::/64")?.description == "fd00:1::/64")
        let odd = try #require(InterfaceAddress("10.1.0.129/25"))
        #expect(odd.network.description == "10.1.0.128/25")
        #expect(try #require(InterfaceAddress("fd00:1:0:0::11/64")).description == "fd00:1::11/64")
        #expect(IPNetwork("0.0.0.0/0")?.contains(try #require(IPAddress("8.8.8.8"))) == true)
    }

    @Test("host names", arguments: ValueTests.hostnameCases)
    func hostnames(_ name: String, _ valid: Bool) {
        #expect((SeedSyntax.hostnameProblem(name) == nil) == valid, "\(name)")
    }

    @Test("user names", arguments: ValueTests.userNameCases)
    func userNames(_ name: String, _ valid: Bool) {
        #expect((SeedSyntax.userNameProblem(name) == nil) == valid, "\(name)")
    }

    @Test("password hashes", arguments: ValueTests.passwordHashCases)
    func passwordHashes(_ hash: String, _ valid: Bool) {
        let problem = SeedSyntax.passwordHashProblem(hash)
        #expect((problem == nil) == valid)
        if let problem, hash.count > 3 { #expect(!problem.contains(hash)) }
    }

    @Test("SSH keys", arguments: ValueTests.sshKeyCases)
    func sshKeys(_ key: String, _ valid: Bool) {
        #expect((SeedSyntax.sshKeyProblem(key) == nil) == valid, "\(SeedSyntax.sshKeyProblem(key) ?? "accepted")")
    }

    @Test("did-you-mean suggestions")
    func suggestions() {
        #expect(Suggestions.closest(to: "hostnme", among: ["hostname", "timezone"]) == "hostname")
        #expect(Suggestions.closest(to: "HostName", among: ["hostname", "timezone"]) == "hostname")
        #expect(Suggestions.closest(to: "min-size", among: SeedReader.matchKeys) == "min_size")
        #expect(Suggestions.closest(to: "colour", among: ["hostname", "timezone"]) == nil)
        #expect(Suggestions.closest(to: "x", among: ["y"]) == nil)
    }

    @Test("glob matching for serial and model")
    func globs() {
        #expect(DiskMatch.glob("S3Z9*", matches: "S3Z9NB0K123456"))
        #expect(DiskMatch.glob("SAMSUNG [MP]Z*", matches: "SAMSUNG MZVL2512"))
        #expect(!DiskMatch.glob("SAMSUNG*", matches: "INTEL SSDSC2KB"))
    }
}
