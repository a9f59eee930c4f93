import Foundation
@testable import Seed
import Testing
import TestSupport

/// The JSON Schema must agree with the parser: every valid case passes it, every invalid case that the schema can
/// express fails it. Checked with a real JSON Schema validator (Python's jsonschema, Draft 2020-12, with formats).
@Suite("Seed JSON Schema")
struct SchemaTests {
    @Test("the repository copy docs/seed.schema.json is the shipped resource")
    func repositoryCopy() throws {
        let shipped = try SeedResources.schema()
        let repository = try Fixture.read("docs/seed.schema.json")
        #expect(shipped == repository)
        #expect(try Fixture.read("Sources/Seed/Resources/seed.schema.json") == repository)
    }

    @Test("the schema is valid JSON that names every top-level key the parser knows")
    func keysAgree() throws {
        let object = try JSONSerialization.jsonObject(with: Data(try SeedResources.schema().utf8)) as? [String: Any]
        let properties = object?["properties"] as? [String: Any]
        #expect(Set(properties?.keys.map { $0 } ?? []) == Set(SeedReader.rootKeys))
        let defs = object?["$defs"] as? [String: Any]
        let match = (defs?["diskMatch"] as? [String: Any])?["properties"] as? [String: Any]
        #expect(Set(match?.keys.map { $0 } ?? []) == Set(SeedReader.matchKeys))
    }

    @Test("the schema agrees with the parser on the valid and invalid examples")
    func agreement() throws {
        var instances: [Any] = []
        var labels: [(name: String, expectValid: Bool)] = []
        for testCase in SeedCases.valid {
            let json = try #require(SeedLoader.jsonObject(of: testCase.yaml), "\(testCase.name) is not JSON")
            instances.append(json)
            labels.append((testCase.name, true))
        }
        for file in try ExampleFiles.all() {
            let json = try #require(SeedLoader.jsonObject(of: file.text), "\(file.path) is not JSON")
            instances.append(json)
            labels.append((file.path, true))
        }
        for testCase in SeedCases.invalid {
            switch testCase.schema {
            case .notJSON:
                continue
            case .rejects, .beyondSchema:
                let json = try #require(SeedLoader.jsonObject(of: testCase.yaml), "\(testCase.name) is not JSON")
                instances.append(json)
                labels.append((testCase.name, testCase.schema == .beyondSchema))
            }
        }
        let verdicts = try JSONSchemaValidator.validate(instances, schema: Fixture.root + "/docs/seed.schema.json")
        try #require(verdicts.count == labels.count)
        for (label, verdict) in zip(labels, verdicts) {
            #expect(verdict.valid == label.expectValid,
                    "\(label.name): schema says \(verdict.valid ? "valid" : "invalid") \(verdict.errors)")
        }
    }

    @Test("YAML 1.2 scalars: what the schema sees")
    func scalarReading() throws {
        let json = try #require(SeedLoader.jsonObject(of: "a: yes\nb: 0x10\nc: 1.5\nd: ~\ne: '1'\nf: 52:54:00:12:34:56\ng: True\n")
            as? [String: Any])
        #expect(json["a"] as? String == "yes")
        #expect(json["b"] as? Int == 16)
        #expect(json["c"] as? Double == 1.5)
        #expect(json["d"] is NSNull)
        #expect(json["e"] as? String == "1")
        #expect(json["f"] as? String == "52:54:00:12:34:56")
        #expect(json["g"] as? Bool == true)
    }
}

extension SchemaVerdict: Equatable {}

/// Runs Python's jsonschema over a batch of instances. CI installs it (scripts/install-deps: python3-jsonschema).
enum JSONSchemaValidator {
    /// The check cannot run here: a failure, never a skip (CI installs what it needs).
    struct Unavailable: Error, CustomStringConvertible {
        let what: String
        var description: String { "the schema agreement test needs \(what)" }
    }

    struct Verdict: Decodable {
        let valid: Bool
        let errors: [String]
    }

    static let script = """
        import json, sys
        import jsonschema
        with open(sys.argv[1]) as f:
            schema = json.load(f)
        with open(sys.argv[2]) as f:
            instances = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        out = []
        for instance in instances:
            errors = list(validator.iter_errors(instance))
            out.append({"valid": not errors,
                        "errors": ["/".join(str(p) for p in e.absolute_path) + ": " + e.message for e in errors[:3]]})
        json.dump(out, sys.stdout)
        """

    /// The first Python that has jsonschema: Debian's (what CI installs) or the one on PATH.
    static func python() throws -> [String] {
        for candidate in [["/usr/bin/python3"], ["/usr/bin/env", "python3"]] {
            if let result = try? run(candidate + ["-c", "import jsonschema"]), result.status == 0 { return candidate }
        }
        throw Unavailable(what: "python3 with the jsonschema package (apt-get install python3-jsonschema)")
    }

    static func validate(_ instances: [Any], schema: String) throws -> [Verdict] {
        let python = try python()
        return try withTemporaryDirectory { directory in
            let input = directory + "/instances.json"
            try JSONSerialization.data(withJSONObject: instances).write(to: URL(fileURLWithPath: input))
            let result = try run(python + ["-c", script, schema, input])
            guard result.status == 0 else {
                throw Unavailable(what: "a working jsonschema check (status \(result.status)): \(result.error)")
            }
            return try JSONDecoder().decode([Verdict].self, from: result.output)
        }
    }

    static func run(_ argv: [String]) throws -> (status: Int32, output: Data, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, outData, String(decoding: errData, as: UTF8.self))
    }
}
