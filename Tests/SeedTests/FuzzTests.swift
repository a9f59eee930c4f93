import Foundation
@testable import Seed
import Testing

/// A deterministic mutation fuzzer over the valid examples: every mutated text must either parse or be rejected
/// with issues that all carry a file, a line and a column inside the text; nothing may crash or hang.
@Suite("Seed parser fuzzing")
struct FuzzTests {
    /// SplitMix64: small, fast and the same on every machine.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ bound: Int) -> Int { bound <= 0 ? 0 : Int(next() % UInt64(bound)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    /// A few thousand in CI (about 5 s in a debug build); set AQUARIUM_FUZZ_ITERATIONS for a longer local run, and
    /// AQUARIUM_FUZZ_SEED to explore other mutations.
    static let iterations = ProcessInfo.processInfo.environment["AQUARIUM_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 4000
    static let seeds: [UInt64] = ProcessInfo.processInfo.environment["AQUARIUM_FUZZ_SEED"].flatMap { UInt64($0) }
        .map { [$0, $0 &+ 1] } ?? [0xA9_A4_10_01, 0x5EED_0002]

    /// Fragments that YAML and the validator treat specially.
    static let fragments = [
        ":", "- ", " ", "  ", "\t", "\n", "\r\n", "[", "]", "{", "}", ",", "'", "\"", "&a ", "*a", "!!str ", "!x ",
        "? ", "#", "|", ">", "%YAML 1.2\n", "---\n", "...\n", "@", "`", "~", "null", "yes", "no", "true", "0x1f", "1e9",
        "-1", "99999999999999999999999", ".inf", "10GiB", "10 gib", "1.5TB", "300.1.1.1", "10.0.0.0/33", "fd00::1/64",
        "::", "$6$", "$y$", "ssh-ed25519 AAAA", "../", "\u{0}", "\u{7f}", "\u{85}", "\u{2028}", "\u{feff}", "é", "😀",
        "\\", "\\u0000", "<<: *a", "version", "host", "hostname", "join", "role", "wipe", "match", "min_size",
        "interfaces", "gateway", "aquarium-duplicate-key-0",
    ]

    static func mutate(_ text: String, _ random: inout Random) -> String {
        var scalars = Array(text.unicodeScalars)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        switch random.below(10) {
        case 0:  // delete a range
            guard !scalars.isEmpty else { break }
            let start = random.below(scalars.count)
            scalars.removeSubrange(start..<min(scalars.count, start + 1 + random.below(8)))
            return String(String.UnicodeScalarView(scalars))
        case 1:  // insert a fragment
            let at = random.below(scalars.count + 1)
            scalars.insert(contentsOf: random.pick(fragments).unicodeScalars, at: at)
            return String(String.UnicodeScalarView(scalars))
        case 2:  // replace a character
            guard !scalars.isEmpty else { break }
            let at = random.below(scalars.count)
            scalars.replaceSubrange(at...at, with: random.pick(fragments).unicodeScalars)
            return String(String.UnicodeScalarView(scalars))
        case 3:  // duplicate a line (duplicate keys, repeated items)
            guard !lines.isEmpty else { break }
            let at = random.below(lines.count)
            lines.insert(lines[at], at: at)
        case 4:  // swap two lines
            guard lines.count > 1 else { break }
            lines.swapAt(random.below(lines.count), random.below(lines.count))
        case 5:  // change indentation
            guard !lines.isEmpty else { break }
            let at = random.below(lines.count)
            lines[at] = random.below(2) == 0 ? "  " + lines[at] : String(lines[at].drop(while: { $0 == " " }))
        case 6:  // replace a value after ':'
            guard !lines.isEmpty else { break }
            let at = random.below(lines.count)
            if let colon = lines[at].firstIndex(of: ":") {
                lines[at] = String(lines[at][...colon]) + " " + random.pick(fragments)
            }
        case 7:  // truncate
            return String(String.UnicodeScalarView(scalars.prefix(random.below(scalars.count + 1))))
        case 8:  // a random byte-level garbage line
            let garbage = (0..<random.below(12)).map { _ in random.pick(fragments) }.joined()
            lines.insert(garbage, at: random.below(lines.count + 1))
        default:  // splice two lines from different places
            guard lines.count > 1 else { break }
            let a = random.below(lines.count)
            let b = random.below(lines.count)
            lines[a] = String(lines[a].prefix(lines[a].count / 2)) + String(lines[b].suffix(lines[b].count / 2))
        }
        return lines.joined(separator: "\n")
    }

    @Test("mutations of the valid examples never crash, and every rejection has a line", arguments: seeds)
    func fuzz(seed: UInt64) throws {
        var corpus = try ExampleFiles.all().map(\.text)
        corpus += SeedCases.valid.map(\.yaml)
        var random = Random(state: seed)
        var accepted = 0
        var rejected = 0
        var slowest = 0.0
        let clock = ContinuousClock()
        let started = clock.now
        for iteration in 0..<(Self.iterations / Self.seeds.count) {
            var text = random.pick(corpus)
            for _ in 0...random.below(3) { text = Self.mutate(text, &random) }
            let lineCount = text.unicodeScalars.filter { $0 == "\n" }.count + 1
            let before = clock.now
            do {
                let seed = try SeedLoader.parse(text, file: "fuzz.yaml")
                accepted += 1
                #expect(seed.version == 1)
            } catch {
                rejected += 1
                #expect(!error.issues.isEmpty)
                for issue in error.issues {
                    #expect(issue.file == "fuzz.yaml")
                    #expect(issue.line >= 1 && issue.line <= lineCount + 1 && issue.column >= 1,
                            "iteration \(iteration): \(issue) outside the text of \(lineCount) lines: \(text.debugDescription)")
                    #expect(!issue.message.isEmpty)
                }
            }
            let elapsed = before.duration(to: clock.now)
            slowest = max(slowest, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        let total = started.duration(to: clock.now)
        print("fuzz seed \(seed): \(accepted) accepted, \(rejected) rejected, slowest \(slowest)s, total \(total)")
        #expect(rejected > 0 && accepted > 0)
        #expect(slowest < 1.0, "one input took \(slowest)s")
        if Self.iterations <= 4000 { #expect(total < .seconds(20)) }
    }
}
