import Foundation
@testable import Seed
import Testing

/// The one redactor, as the seed uses it (known values only) and as the support bundle does (values of six characters
/// or more, and secret-shaped text).
@Suite struct RedactorTests {
    @Test(arguments: [
        // secrets, text, what the seed's redaction gives, what the bundle's redaction gives
        (["abc"], "abc and abcd", "<redacted> and <redacted>d", "abc and abcd"),
        (["token-1234"], "join token-1234 now", "join <redacted> now", "join <redacted> now"),
        (["abcdefgh", "abcdefghij"], "abcdefghij/abcdefgh", "<redacted>/<redacted>", "<redacted>/<redacted>"),
        ([""], "nothing secret", "nothing secret", "nothing secret"),
        ([], "\tkey = AQUnknownKey==\n", "\tkey = AQUnknownKey==\n", "\tkey = <redacted>\n"),
        ([], #"{"secret_key": "s3", "token": "t"}"#, #"{"secret_key": "s3", "token": "t"}"#,
         #"{"secret_key": "<redacted>", "token": "<redacted>"}"#),
    ] as [([String], String, String, String)])
    func redaction(secrets: [String], text: String, seedForm: String, bundleForm: String) {
        #expect(Redactor(secrets: Set(secrets), minimumLength: 1, scrubsShapes: false).redact(text) == seedForm)
        var bundle = Redactor()
        bundle.add(secrets)
        let clean = bundle.redact(text)
        #expect(clean == bundleForm)
        #expect(bundle.leaks(in: clean).isEmpty)
    }

    @Test(arguments: [
        ("[client.admin]\n\tkey = AQB1==\n\tcaps mon = \"allow *\"\n", ["AQB1=="]),
        ("key=a\nkey = b\n# key: c\n", ["a", "b"]),
        ("", []),
    ] as [(String, [String])])
    func keyringKeys(text: String, keys: [String]) {
        #expect(Redactor.keyringKeys(text) == keys)
    }
}
