import Foundation
@testable import Seed
import Testing
import TestSupport

@Suite("Seed signatures")
struct SignatureTests {
    static let seedBytes = Data(Fixture.minimal.utf8)

    @Test("sign and verify round trip; key and signature texts read back")
    func roundTrip() throws {
        let (privateKey, publicKey) = SeedSignature.keygen(comment: "ops@example")
        let signature = try SeedSignature.sign(data: Self.seedBytes, privateKey: privateKey)
        #expect(signature.rawRepresentation.count == 64)
        #expect(signature.keyFingerprint == publicKey.fingerprint)
        #expect(SeedSignature.verify(data: Self.seedBytes, signature: signature, publicKey: publicKey))

        let reread = try SeedDetachedSignature(fileData: Data(signature.text.utf8))
        #expect(reread == signature)
        let rereadPublic = try SeedPublicKey(line: publicKey.text)
        #expect(rereadPublic == publicKey)
        #expect(rereadPublic.comment == "ops@example")
        let rereadPrivate = try SeedPrivateKey(fileText: privateKey.fileText)
        #expect(rereadPrivate.publicKey == publicKey)
        #expect(publicKey.text.hasPrefix("aquarium-seed-ed25519-public "))
        #expect(privateKey.fileText.hasPrefix("aquarium-seed-ed25519-private "))
        #expect(signature.text.hasPrefix("aquarium-seed-ed25519-signature "))
        #expect(publicKey.fingerprint.hasPrefix("SHA256:") && publicKey.fingerprint.count == 50)
        // The private key's description never shows the key.
        #expect(!"\(privateKey)".contains(privateKey.rawKey.base64EncodedString()))
    }

    @Test("one flipped byte anywhere in the seed is refused")
    func flippedSeedByte() throws {
        let (privateKey, publicKey) = SeedSignature.keygen()
        let signature = try SeedSignature.sign(data: Self.seedBytes, privateKey: privateKey)
        for index in Self.seedBytes.indices {
            for bit in [0x01, 0x80] as [UInt8] {
                var tampered = Self.seedBytes
                tampered[index] ^= bit
                #expect(!SeedSignature.verify(data: tampered, signature: signature, publicKey: publicKey),
                        "accepted with byte \(index) changed")
            }
        }
        #expect(!SeedSignature.verify(data: Self.seedBytes + Data("\n".utf8), signature: signature, publicKey: publicKey))
        #expect(!SeedSignature.verify(data: Self.seedBytes.dropLast(), signature: signature, publicKey: publicKey))
    }

    @Test("one flipped byte anywhere in the signature is refused, raw or in the file text")
    func flippedSignatureByte() throws {
        let (privateKey, publicKey) = SeedSignature.keygen()
        let signature = try SeedSignature.sign(data: Self.seedBytes, privateKey: privateKey)
        for index in 0..<64 {
            var raw = signature.rawRepresentation
            raw[raw.startIndex + index] ^= 0x01
            let tampered = SeedDetachedSignature(rawRepresentation: raw, keyFingerprint: signature.keyFingerprint)
            #expect(!SeedSignature.verify(data: Self.seedBytes, signature: tampered, publicKey: publicKey))
        }
        // In the file: every character of the base64 field, changed to another base64 character.
        let text = Array(signature.text.utf8)
        let start = "aquarium-seed-ed25519-signature ".utf8.count
        for index in start..<(start + 88) {
            var changed = text
            changed[index] = changed[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            if let parsed = try? SeedDetachedSignature(fileData: Data(changed)) {
                #expect(!SeedSignature.verify(data: Self.seedBytes, signature: parsed, publicKey: publicKey),
                        "accepted with signature character \(index) changed")
            }
        }
    }

    @Test("a signature from another key is refused")
    func otherKey() throws {
        let (privateKey, _) = SeedSignature.keygen()
        let (_, otherPublicKey) = SeedSignature.keygen()
        let signature = try SeedSignature.sign(data: Self.seedBytes, privateKey: privateKey)
        #expect(!SeedSignature.verify(data: Self.seedBytes, signature: signature, publicKey: otherPublicKey))
    }

    @Test("malformed key and signature texts are rejected", arguments: [
        "aquarium-seed-ed25519-public",
        "aquarium-seed-ed25519-public AAAA",
        "aquarium-seed-ed25519-public not-base64!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGenwXGA3s6HM8JH8uclKkrr79Fw2j//7pSK8MLHsMNc",
        "aquarium-seed-ed25519-private AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ])
    func malformedPublicKey(_ line: String) {
        #expect(throws: SeedSignatureError.self) { try SeedPublicKey(line: line) }
    }

    @Test("non-canonical base64 in a signature is rejected")
    func nonCanonicalBase64() throws {
        let (privateKey, _) = SeedSignature.keygen()
        let signature = try SeedSignature.sign(data: Self.seedBytes, privateKey: privateKey)
        var base64 = Array(signature.rawRepresentation.base64EncodedString().utf8)
        // 64 bytes end in one byte and "==": the character before the padding carries 4 unused bits.
        let last = base64.count - 3
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let value = try #require(alphabet.firstIndex(of: base64[last]))
        base64[last] = alphabet[value ^ 0x01]
        let text = "aquarium-seed-ed25519-signature " + String(decoding: base64, as: UTF8.self) + "\n"
        #expect(throws: SeedSignatureError.self) { try SeedDetachedSignature(fileData: Data(text.utf8)) }
    }

    @Test("keygen writes the private key with mode 0600, refuses to overwrite, and sign/verify use the files")
    func files() throws {
        try withTemporaryDirectory { directory in
            let keyPath = directory + "/ops"
            let publicKey = try SeedSignature.writeKeyPair(privateKeyPath: keyPath, publicKeyPath: keyPath + ".pub",
                                                           comment: "ops")
            #expect(try mode(keyPath) == 0o600)
            #expect(try mode(keyPath + ".pub") == 0o644)
            #expect(try SeedSignature.readPublicKeys(path: keyPath + ".pub") == [publicKey])
            let error = #expect(throws: SeedSignatureError.self) {
                try SeedSignature.writeKeyPair(privateKeyPath: keyPath, publicKeyPath: keyPath + ".pub")
            }
            #expect(error?.kind == .exists)
            #expect(error?.exitStatus == 2)

            let seedPath = directory + "/seed.yaml"
            try Fixture.minimal.write(toFile: seedPath, atomically: true, encoding: .utf8)
            let privateKey = try SeedSignature.readPrivateKey(path: keyPath)
            let signaturePath = try SeedSignature.signFile(path: seedPath, privateKey: privateKey)
            #expect(signaturePath == seedPath + ".sig")
            let data = try Data(contentsOf: URL(fileURLWithPath: seedPath))
            #expect(try SeedSignature.verify(seedData: data, path: seedPath, publicKeys: [publicKey]) == publicKey)

            // A private key others can read is refused, as ssh does.
            chmod(keyPath, 0o644)
            #expect(throws: SeedSignatureError.self) { try SeedSignature.readPrivateKey(path: keyPath) }
        }
    }

    @Test("verifySeedFile: no trusted keys means no signature needed; with keys, unsigned or tampered seeds are refused")
    func trustedKeysDirectory() throws {
        try withTemporaryDirectory { directory in
            let trusted = directory + "/trusted"
            let seedPath = directory + "/seed.yaml"
            try Fixture.minimal.write(toFile: seedPath, atomically: true, encoding: .utf8)

            // No directory, then an empty one: not required.
            #expect(try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted) == .notRequired)
            try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
            try "not a key\n".write(toFile: trusted + "/README", atomically: true, encoding: .utf8)
            #expect(try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted) == .notRequired)

            // A trusted key: the unsigned seed is refused (exit 3).
            let (privateKey, publicKey) = SeedSignature.keygen(comment: "ops")
            let (otherPrivateKey, otherPublicKey) = SeedSignature.keygen(comment: "other")
            try publicKey.text.write(toFile: trusted + "/ops.pub", atomically: true, encoding: .utf8)
            let unsigned = #expect(throws: SeedSignatureError.self) {
                try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted)
            }
            #expect(unsigned?.kind == .unsigned)
            #expect(unsigned?.exitStatus == 3)

            // Signed by the trusted key: verified.
            try SeedSignature.signFile(path: seedPath, privateKey: privateKey)
            #expect(try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted) == .verified(by: publicKey))

            // Tampered seed: refused.
            try (Fixture.minimal + "# changed\n").write(toFile: seedPath, atomically: true, encoding: .utf8)
            let tampered = #expect(throws: SeedSignatureError.self) {
                try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted)
            }
            #expect(tampered?.kind == .mismatch)
            #expect(tampered?.message.contains("changed after signing") == true)

            // Signed by an untrusted key: refused, and the message says so.
            try SeedSignature.signFile(path: seedPath, privateKey: otherPrivateKey)
            let untrusted = #expect(throws: SeedSignatureError.self) {
                try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted)
            }
            #expect(untrusted?.message.contains("\(otherPublicKey.fingerprint), which is not trusted") == true)

            // Several trusted keys: any one will do.
            try otherPublicKey.text.write(toFile: trusted + "/other.pub", atomically: true, encoding: .utf8)
            #expect(try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted)
                    == .verified(by: otherPublicKey))

            // A garbage signature file is refused, not skipped.
            try "garbage\n".write(toFile: seedPath + ".sig", atomically: true, encoding: .utf8)
            #expect(throws: SeedSignatureError.self) {
                try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted)
            }

            // A malformed trusted key is an error, never ignored.
            try "aquarium-seed-ed25519-public AAAA\n".write(toFile: trusted + "/broken.pub", atomically: true, encoding: .utf8)
            let broken = #expect(throws: SeedSignatureError.self) {
                try SeedSignature.verifySeedFile(path: seedPath, trustedKeysDirectory: trusted)
            }
            #expect(broken?.kind == .malformed)
        }
    }

    func mode(_ path: String) throws -> mode_t {
        var info = stat()
        try #require(stat(path, &info) == 0)
        return info.st_mode & 0o777
    }
}
