#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system or C-library call: what was attempted, on what, and why.
///
/// Every C wrapper in the project turns failures into this one type (or a
/// library-specific error that carries the library's own message), so a person
/// always sees the operation, the path or device, and the reason.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What was attempted, e.g. "open", "blkid_do_safeprobe".
    public var operation: String
    /// The file or device the operation was about, if any.
    public var path: String?
    /// The saved `errno`, if the call reported one.
    public var errno: Int32?
    /// The library's own explanation (libparted's exception text, archive_error_string, ...).
    public var message: String?

    public init(operation: String, path: String? = nil, errno: Int32? = nil, message: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.message = message
    }

    /// Builds an error from the current `errno`. Call it straight after the failing call.
    public static func fromErrno(_ operation: String, path: String? = nil, message: String? = nil) -> SystemError {
        SystemError(operation: operation, path: path, errno: Glibc.errno, message: message)
    }

    public var description: String {
        var text = operation
        if let path { text += " \(path)" }
        text += " failed"
        var reasons: [String] = []
        if let message, !message.isEmpty { reasons.append(message) }
        if let errno, errno != 0 { reasons.append("\(String(cString: strerror(errno))) (errno \(errno))") }
        if !reasons.isEmpty { text += ": " + reasons.joined(separator: "; ") }
        return text
    }
}

/// Runs a call that reports failure through a negative return and `errno`,
/// retrying on `EINTR`, and throws `SystemError` with `errno` saved at once.
@discardableResult
public func checkErrno<T: BinaryInteger>(_ operation: String, path: String? = nil, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let saved = Glibc.errno
        if saved == EINTR { continue }
        throw SystemError(operation: operation, path: path, errno: saved)
    }
}

/// Converts a nullable C string into a Swift string; nil stays nil.
@inlinable
public func optionalString(_ pointer: UnsafePointer<CChar>?) -> String? {
    guard let pointer else { return nil }
    return String(cString: pointer)
}
