import CommandSupport
import Exec

/// Why provisioning stopped. Each case carries a message that names the file, device or step and what to do.
public enum ProvisionError: Error, CustomStringConvertible, AquariumExitCoded, Sendable {
    /// Bad input: a seed or node record that cannot be used, a bad option. Exit 2.
    case invalidInput(String)
    /// Refused for safety (a storage disk holds data, is the system disk, is mounted). Exit 3.
    case refused(String)
    /// Something failed while running. Exit 1.
    case failed(String)
    /// Something failed while running, and `cause` is the error underneath (a file error, a failed command): the
    /// message is for the operator, the cause for whoever debugs. Exit 1.
    case failedBecause(String, cause: any Error & Sendable)
    /// A step failed; `underlying` says how.
    case step(String, String)

    public var description: String {
        switch self {
        case .invalidInput(let text), .refused(let text), .failed(let text), .failedBecause(let text, _): return text
        case .step(let step, let text): return "step \(step) failed: \(text)"
        }
    }

    public var exitCode: AquariumExit {
        switch self {
        case .invalidInput: return .invalidInput
        case .refused: return .refused
        case .failed, .failedBecause, .step: return .runtimeFailure
        }
    }

    /// The error underneath, when one was kept.
    public var cause: (any Error & Sendable)? {
        if case .failedBecause(_, let cause) = self { return cause }
        return nil
    }

    static func command(_ error: CommandError) -> ProvisionError { .failedBecause(error.description, cause: error) }
}
