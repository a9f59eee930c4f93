import Foundation

/// The syntax of the services' names and material: pools, iSCSI names, S3 users and buckets, PEM certificates and keys.
extension SeedSyntax {
    /// A Ceph pool or file system name as Aquarium allows it: `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`.
    static func poolNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, isASCIILetterOrDigit(first), bytes.count <= 63,
              bytes.allSatisfy({ isASCIILetterOrDigit($0) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d }) else {
            return "'\(printable(name))' is not a valid name: 1 to 63 letters, digits, '.', '_' or '-', "
                + "starting with a letter or digit"
        }
        return nil
    }

    /// An iSCSI qualified name (RFC 3720 3.2.6.3.1) as LIO takes it: `iqn.YYYY-MM.reversed.domain[:name]`, lowercase
    /// letters, digits, '.', '-' and ':' after the date, at most 223 bytes.
    static func iqnProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        let allowed = { (byte: UInt8) in isLowerOrDigit(byte) || byte == 0x2e || byte == 0x2d || byte == 0x3a }
        func digits(_ range: Range<Int>) -> Bool { range.allSatisfy { bytes[$0] >= 0x30 && bytes[$0] <= 0x39 } }
        guard bytes.count >= 13, bytes.count <= 223, name.hasPrefix("iqn."), digits(4..<8), bytes[8] == 0x2d,
              digits(9..<11), bytes[11] == 0x2e, bytes[12...].allSatisfy(allowed),
              let first = bytes[12...].first, isLowerOrDigit(first) else {
            return "'\(printable(name))' is not an iSCSI name: write iqn.YYYY-MM.reversed.domain:name in lowercase, "
                + "for example \(Seed.ISCSI.defaultTarget)"
        }
        return nil
    }

    /// An S3 user name (RGW's uid): `^[a-z0-9][a-z0-9_-]{0,62}$`, not the Provisioner's administrator.
    static func s3UserProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, isLowerOrDigit(first), bytes.count <= 63,
              bytes.allSatisfy({ isLowerOrDigit($0) || $0 == 0x5f || $0 == 0x2d }) else {
            return "'\(printable(name))' is not a valid S3 user name: 1 to 63 lowercase letters, digits, '_' or '-', "
                + "starting with a letter or digit"
        }
        if name == Seed.S3User.administrator { return "'\(name)' is the Provisioner's own S3 administrator; choose another name" }
        return nil
    }

    /// An S3 bucket name (the S3 rules RGW enforces by default): 3 to 63 lowercase letters, digits, '.' and '-',
    /// starting and ending with a letter or digit, no '..', not an IPv4 address.
    /// A PEM certificate (chain): one or more CERTIFICATE blocks and nothing else.
    static func certificateProblem(_ text: String) -> String? {
        let blocks = pemBlocks(text)
        guard let blocks, !blocks.isEmpty else {
            return "is not a PEM certificate: give the -----BEGIN CERTIFICATE----- block (and the chain after it) as a "
                + "literal block (certificate: |)"
        }
        if let other = blocks.first(where: { $0 != "CERTIFICATE" }) {
            return "holds a \(other) block; give only certificates here (the key goes in private_key)"
        }
        return nil
    }

    /// One PEM private key (PKCS#8, RSA or EC).
    static func privateKeyProblem(_ text: String) -> String? {
        guard let blocks = pemBlocks(text), blocks.count == 1, ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"].contains(blocks[0]) else {
            return "is not one PEM private key: give the -----BEGIN PRIVATE KEY----- block as a literal block "
                + "(private_key: |); an encrypted key cannot be used (the node starts unattended)"
        }
        return nil
    }

    /// A private key Ceph's dashboard can load: Pacific's dashboard checks its key with pyOpenSSL, which takes RSA keys
    /// only (an EC key put the module into "Only RSA keys can currently be checked", seen in ClusterTests).
    static func rsaPrivateKeyProblem(_ text: String) -> String? {
        if let problem = privateKeyProblem(text) { return problem }
        let advice = "Ceph's dashboard takes RSA keys only: make one with openssl req -newkey rsa:3072 ..."
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if lines.first == "-----BEGIN RSA PRIVATE KEY-----" { return nil }
        if lines.first == "-----BEGIN EC PRIVATE KEY-----" { return "is an EC key; \(advice)" }
        var body = lines.filter { !$0.hasPrefix("-----") }.joined()
        body = String(body.prefix(body.count / 4 * 4))
        // PKCS#8: the algorithm's OID, rsaEncryption (1.2.840.113549.1.1.1), near the start.
        let rsaEncryption: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
        guard let der = Data(base64Encoded: String(body.prefix(64))).map(Array.init) else { return "is not a PEM private key" }
        let isRSA = der.count >= rsaEncryption.count
            && (0...(der.count - rsaEncryption.count)).contains { Array(der[$0..<($0 + rsaEncryption.count)]) == rsaEncryption }
        return isRSA ? nil : "is not an RSA key; \(advice)"
    }

    /// The labels of the PEM blocks in `text` (`CERTIFICATE`, `PRIVATE KEY`), nil when it is not PEM: every BEGIN
    /// matched by its END, base64 between them, nothing else but blank lines.
    static func pemBlocks(_ text: String) -> [String]? {
        var labels: [String] = []
        var open: String?
        var body = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----"), open == nil {
                open = String(line.dropFirst(11).dropLast(5))
                body = 0
            } else if let label = open, line == "-----END \(label)-----" {
                guard body > 0 else { return nil }
                labels.append(label)
                open = nil
            } else if open != nil, line.allSatisfy({ $0.isLetter && $0.isASCII || $0.isNumber || "+/=".contains($0) }) {
                body += 1
            } else {
                return nil
            }
        }
        return open == nil ? labels : nil
    }

    static func bucketNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        let rule = "3 to 63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit"
        guard bytes.count >= 3, bytes.count <= 63, let first = bytes.first, let last = bytes.last,
              isLowerOrDigit(first), isLowerOrDigit(last),
              bytes.allSatisfy({ isLowerOrDigit($0) || $0 == 0x2e || $0 == 0x2d }) else {
            return "'\(printable(name))' is not a valid S3 bucket name: \(rule)"
        }
        if name.contains("..") || name.contains(".-") || name.contains("-.") {
            return "'\(name)' is not a valid S3 bucket name: no '..', '.-' or '-.'"
        }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 && parts.allSatisfy({ UInt8($0) != nil }) {
            return "'\(name)' is not a valid S3 bucket name: it reads as an IPv4 address"
        }
        return nil
    }
}
