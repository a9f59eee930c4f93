import Foundation

/// A console log file QEMU appends to, read incrementally: each `readNew` reads only the bytes added since the last
/// one and reports which markers have appeared, including one split across two reads. Decoding is lenient like
/// `VirtualMachineRunner.readConsole` (a stray byte becomes U+FFFD); a UTF-8 sequence cut at the end of a read waits
/// for its remaining bytes instead of becoming U+FFFD.
struct ConsoleLog {
    let path: String
    let markers: [String]
    /// Bytes of the file consumed so far.
    private(set) var offset: UInt64 = 0
    /// The console decoded so far.
    private(set) var text = ""
    /// A trailing UTF-8 sequence still missing bytes.
    private var pending = Data()
    /// The end of `text`, as long as the longest marker, so a marker split between two reads is still found.
    private var tail = ""
    private var found: Set<String> = []
    private let longestMarker: Int

    init(path: String, markers: [String]) {
        self.path = path
        self.markers = markers
        longestMarker = markers.map(\.count).max() ?? 0
    }

    /// Reads what was appended since the last call; returns the markers seen for the first time, in `markers` order.
    mutating func readNew() -> [String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.readToEnd(), !data.isEmpty else { return [] }
        offset += UInt64(data.count)
        pending.append(data)
        let complete = pending.count - Self.incompleteSuffixLength(pending)
        let chunk = String(decoding: pending.prefix(complete), as: UTF8.self)
        pending = Data(pending.dropFirst(complete))
        text += chunk
        let window = tail + chunk
        tail = String(window.suffix(longestMarker))
        let new = markers.filter { !found.contains($0) && window.contains($0) }
        found.formUnion(new)
        return new
    }

    /// The whole console, with any cut-off sequence at its very end decoded leniently.
    mutating func finish() -> String {
        if !pending.isEmpty {
            text += String(decoding: pending, as: UTF8.self)
            pending = Data()
        }
        return text
    }

    /// How many bytes at the end of `data` start a UTF-8 sequence that is not complete yet (0 when none).
    static func incompleteSuffixLength(_ data: Data) -> Int {
        let bytes = Array(data.suffix(3))
        for back in 1...max(1, bytes.count) where back <= bytes.count {
            let byte = bytes[bytes.count - back]
            if byte & 0xC0 == 0x80 { continue }  // a continuation byte: look further back
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            return length > back ? back : 0
        }
        return 0
    }
}
