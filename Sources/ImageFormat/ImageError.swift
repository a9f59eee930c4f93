import CommandSupport
import Foundation

/// A failure of an `aquarium-image` operation: what went wrong, on which file or device, and what to do.
/// `kind` decides the exit code (docs/exit-codes.md).
public struct ImageError: Error, CustomStringConvertible, AquariumExitCoded, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// A tool, a device or the file system failed (exit 1).
        case failure
        /// Bad input: a missing file, a description that does not validate, a bad seed (exit 2).
        case invalidInput
        /// Refused for safety; the message names the device and why (exit 3).
        case refused
    }

    public var kind: Kind
    /// The file or device concerned.
    public var subject: String
    public var message: String

    public init(_ kind: Kind, _ subject: String, _ message: String) {
        self.kind = kind
        self.subject = subject
        self.message = message
    }

    public var description: String {
        switch kind {
        case .refused: "refused: \(subject): \(message)"
        case .failure, .invalidInput: "\(subject): \(message)"
        }
    }

    public var exitCode: AquariumExit {
        switch kind {
        case .failure: .runtimeFailure
        case .invalidInput: .invalidInput
        case .refused: .refused
        }
    }

    package static func failure(_ subject: String, _ message: String) -> ImageError { ImageError(.failure, subject, message) }
    package static func invalid(_ subject: String, _ message: String) -> ImageError { ImageError(.invalidInput, subject, message) }
    package static func refused(_ subject: String, _ message: String) -> ImageError { ImageError(.refused, subject, message) }
}

/// `strerror(errno)` as a Swift string.
package func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }
