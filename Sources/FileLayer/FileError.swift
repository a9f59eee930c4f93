import Foundation
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

/// One line for a file that could not be read or written, whichever layer failed: "PATH: no such file" rather than
/// Foundation's `Error Domain=NSCocoaErrorDomain Code=260 ... UserInfo={...}`.
public enum FileProblem {
    /// `path` (or the one the error names) and the reason in a few words.
    public static func describe(_ error: any Error, path: String? = nil) -> String {
        if let error = error as? FileError { return error.description }
        let error = error as NSError
        let named = path ?? (error.userInfo[NSFilePathErrorKey] as? String)
            ?? (error.userInfo[NSURLErrorKey] as? URL)?.path ?? "the file"
        var isDirectory: ObjCBool = false
        if error.domain == NSCocoaErrorDomain, error.code == CocoaError.fileReadUnknown.rawValue,
           FileManager.default.fileExists(atPath: named, isDirectory: &isDirectory), isDirectory.boolValue {
            // Foundation reads a directory as an unknown failure, without errno.
            return "\(named): \(reason(NSError(domain: NSPOSIXErrorDomain, code: Int(EISDIR))))"
        }
        return "\(named): \(reason(error))"
    }

    public static func reason(_ error: NSError) -> String {
        var code: Int32?
        if error.domain == NSPOSIXErrorDomain {
            code = Int32(error.code)
        } else if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            code = Int32(underlying.code)
        } else if error.domain == NSCocoaErrorDomain {
            switch error.code {
            case CocoaError.fileNoSuchFile.rawValue, CocoaError.fileReadNoSuchFile.rawValue: code = ENOENT
            case CocoaError.fileReadNoPermission.rawValue, CocoaError.fileWriteNoPermission.rawValue: code = EACCES
            default: break
            }
        }
        switch code {
        case ENOENT?: return "no such file"
        case EACCES?: return "permission denied"
        case EISDIR?: return "is a directory, not a file"
        case let code?: return String(cString: strerror(code)).lowercased()
        case nil: return error.localizedDescription
        }
    }
}
