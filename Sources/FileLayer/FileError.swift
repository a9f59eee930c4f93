import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A failed file operation: what was attempted on which path, and the errno that says why.
public struct FileError: Error, CustomStringConvertible, Sendable, Equatable {
    public var path: String
    public var operation: String
    public var code: Int32
    /// For a positional read or write: the byte of the file where it failed.
    public var offset: UInt64?

    public init(path: String, operation: String, code: Int32, offset: UInt64? = nil) {
        self.path = path
        self.operation = operation
        self.code = code
        self.offset = offset
    }

    public init(path: String, operation: String, errno: Errno, offset: UInt64? = nil) {
        self.init(path: path, operation: operation, code: errno.rawValue, offset: offset)
    }

    /// The cause as swift-system's `Errno`.
    public var errno: Errno { Errno(rawValue: code) }

    public var description: String { "cannot \(operation) \(path): \(errno)" }
}

/// The one place a C call without a swift-system form (`openat`, `fsync`, `renameat`, ...) becomes a Swift error: the
/// call is retried on EINTR and a failure (a negative result) captures errno at once as an `Errno`.
@discardableResult
func system<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ call: () -> I) -> Result<I, Errno> {
    while true {
        let result = call()
        if result >= 0 { return .success(result) }
        let error = Errno(rawValue: Glibc.errno)
        if retryOnInterrupt, error == .interrupted { continue }
        return .failure(error)
    }
}

extension Result where Failure == Errno {
    /// The value, or a `FileError` naming `operation` on `path`.
    @discardableResult
    func get(_ path: String, _ operation: String) throws(FileError) -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let error): throw FileError(path: path, operation: operation, errno: error)
        }
    }
}
