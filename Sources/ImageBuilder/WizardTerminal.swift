import ArgumentParser
import CommandSupport
import Disks
import FileLayer
import FirstBoot
import Foundation
import JSONCoding
import Seed

// The terminal `seed new` asks on (echo off for secrets) and the local yescrypt hashing of the password.

// MARK: - the terminal

/// The questions' terminal: prompts to standard output, answers a line at a time from standard input, secrets read
/// with echo off (termios) and kept in bytes that are wiped after use.
struct WizardTerminal: Sendable {
    func say(_ text: String) {
        put(text + "\n")
    }

    /// Straight to the terminal, unbuffered, so a prompt shows before its answer is read.
    func put(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            bytes = bytes.dropFirst(written)
        }
    }

    /// `question [shown]: `, then the answer without surrounding spaces ("" for an empty line).
    func ask(_ question: String, shown: String?) throws(SeedWizardStop) -> String {
        put(question + (shown.map { " [\($0)]" } ?? "") + ": ")
        return String(decoding: try readLine(), as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    /// The same with echo off; the answer's bytes, for the caller to wipe.
    func askSecret(_ question: String, shown: String?) throws(SeedWizardStop) -> [UInt8] {
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return try ask(question, shown: shown).utf8.map { $0 } }
        EchoRestore.saved = saved
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        quiet.c_lflag |= tcflag_t(ECHONL)
        // Interrupted while echo is off: the terminal gets its echo back before the process ends.
        let handler: @convention(c) (Int32) -> Void = { number in
            var saved = EchoRestore.saved
            tcsetattr(STDIN_FILENO, TCSANOW, &saved)
            _ = write(STDOUT_FILENO, "\n", 1)
            _exit(128 + number)
        }
        let previous = [SIGINT, SIGTERM, SIGHUP].map { ($0, signal($0, handler)) }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(STDIN_FILENO, TCSANOW, &saved)
            for (number, old) in previous { signal(number, old) }
        }
        put(question + (shown.map { " [\($0)]" } ?? "") + ": ")
        var line = try readLine()
        defer { Self.wipe(&line) }
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        guard let first = line.firstIndex(where: { !blank($0) }), let last = line.lastIndex(where: { !blank($0) }) else {
            return []
        }
        return Array(line[first...last])
    }

    /// One line from standard input, without its line end; read a byte at a time so nothing is buffered.
    func readLine() throws(SeedWizardStop) -> [UInt8] {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(STDIN_FILENO, &byte, 1)
            if count == 1 {
                if byte == 0x0a { break }
                line.append(byte)
            } else if count < 0 && errno == EINTR {
                continue
            } else if line.isEmpty {
                say("")
                throw SeedWizardStop.endOfInput
            } else {
                break
            }
        }
        byte = 0
        if line.last == 0x0d { line.removeLast() }
        return line
    }

    /// Overwrites a secret's bytes before they are released.
    static func wipe(_ bytes: inout [UInt8]) {
        for index in bytes.indices { bytes[index] = 0 }
    }
}

/// The terminal settings a signal handler puts back (a handler cannot capture context).
private enum EchoRestore {
    nonisolated(unsafe) static var saved = termios()
}

// MARK: - password hashing

/// crypt(3) yescrypt from the system's libxcrypt (`libcrypt.so.1`), loaded when a password is hashed: a fresh salt
/// from `crypt_gensalt_ra("$y$", 0, NULL, 0)` (the library's default cost, its own random bytes), then `crypt_r`.
enum Yescrypt {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private typealias GensaltRA = @convention(c) (UnsafePointer<CChar>?, UInt, UnsafePointer<CChar>?, Int32)
        -> UnsafeMutablePointer<CChar>?
    private typealias CryptR = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?)
        -> UnsafeMutablePointer<CChar>?
    private typealias Crypt = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> UnsafeMutablePointer<CChar>?

    /// More than libxcrypt's `sizeof(struct crypt_data)` (32768 bytes), zeroed as crypt_r wants it the first time.
    private static let cryptDataSize = 65536

    static func hash(_ password: [UInt8]) throws(Failure) -> String {
        guard let library = dlopen("libcrypt.so.1", RTLD_NOW | RTLD_LOCAL) else {
            throw Failure(description: "cannot hash the password here: libcrypt.so.1 (Debian's libcrypt1) is not "
                + "installed; leave the password empty or install it")
        }
        defer { dlclose(library) }
        guard let gensalt = dlsym(library, "crypt_gensalt_ra").map({ unsafeBitCast($0, to: GensaltRA.self) }) else {
            throw Failure(description: "cannot hash the password here: libcrypt.so.1 has no crypt_gensalt_ra")
        }
        guard let setting = gensalt("$y$", 0, nil, 0) else {
            throw Failure(description: "cannot make a yescrypt salt: \(String(cString: strerror(errno)))")
        }
        defer { free(setting) }
        var phrase = password.map { CChar(bitPattern: $0) } + [0]
        defer { for index in phrase.indices { phrase[index] = 0 } }
        let data = UnsafeMutableRawPointer.allocate(byteCount: cryptDataSize, alignment: 16)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: cryptDataSize)
        defer {
            // The library keeps a copy of the password in its work area.
            data.initializeMemory(as: UInt8.self, repeating: 0, count: cryptDataSize)
            data.deallocate()
        }
        let result: UnsafeMutablePointer<CChar>?
        if let cryptR = dlsym(library, "crypt_r").map({ unsafeBitCast($0, to: CryptR.self) }) {
            result = cryptR(phrase, setting, data)
        } else if let crypt = dlsym(library, "crypt").map({ unsafeBitCast($0, to: Crypt.self) }) {
            result = crypt(phrase, setting)
        } else {
            throw Failure(description: "cannot hash the password here: libcrypt.so.1 has neither crypt_r nor crypt")
        }
        // Failure is NULL or a string starting with '*' (never a valid hash).
        let hash = result.map { String(cString: $0) } ?? ""
        guard hash.hasPrefix("$y$") else {
            throw Failure(description: "the password could not be hashed with yescrypt (at most 512 bytes); try another")
        }
        return hash
    }
}
