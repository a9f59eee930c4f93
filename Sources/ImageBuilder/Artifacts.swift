import Exec
import FileLayer
import Foundation
import Logging

/// The files a build leaves in its output directory: NAME.raw, NAME.raw.bmap, SHA256SUMS and,
/// with compression, NAME.raw.zst.
public struct ImageArtifacts: Sendable {
    public var image: String
    public var bmap: String
    public var sums: String
    public var compressed: String?
    public var blockMap: BlockMap
}

public enum ArtifactWriter {
    /// Writes the bmap next to `image`, optionally `image.zst`, and SHA256SUMS over all of them.
    public static func finish(image: String, compress: Bool, logger: Logger) throws(ImageError) -> ImageArtifacts {
        let fd = open(image, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid(image, "cannot open: \(errnoText())") }
        try? FileIO.sync(fd, path: image)
        close(fd)
        let map = try BlockMap.create(imagePath: image)
        let bmapPath = image + ".bmap"
        do {
            try AtomicFile.write(Data(map.xml().utf8), to: bmapPath)
        } catch {
            throw .failure(bmapPath, "cannot write the block map: \(error.errno)")
        }
        var compressed: String?
        if compress {
            let target = image + ".zst"
            try runTool(Command("zstd", ["-q", "-f", "-T0", "-10", image, "-o", target]), subject: image,
                        what: "compressing with zstd", logger: logger)
            compressed = target
        }
        let directory = (image as NSString).deletingLastPathComponent
        let names = [image, bmapPath] + (compressed.map { [$0] } ?? [])
        let imageName = (image as NSString).lastPathComponent
        let sums = try FileDigest.writeSums(directory: directory.isEmpty ? "." : directory,
                                            files: names.map { ($0 as NSString).lastPathComponent },
                                            known: map.imageDigest.map { [imageName: $0] } ?? [:])
        return ImageArtifacts(image: image, bmap: bmapPath, sums: sums, compressed: compressed, blockMap: map)
    }
}

/// Progress and a closing summary on standard error, silent with `--quiet`. On a terminal the progress is one line
/// redrawn in place, with a bar, the rate and the time left; anywhere else (a pipe, a log, the journal) a plain line
/// every `interval` seconds of the operation and one when it ends, so a log shows where it got to without `\r`.
public struct Reporter: Sendable {
    public var quiet: Bool
    let terminal: Bool
    let interval: Double
    let write: @Sendable (String) -> Void
    private let state = ProgressState()

    public init(quiet: Bool) {
        self.init(quiet: quiet, terminal: isatty(STDERR_FILENO) == 1, interval: 5) {
            FileHandle.standardError.write(Data($0.utf8))
        }
    }

    /// A reporter writing to `write`, as on a terminal or not.
    public init(quiet: Bool, terminal: Bool, interval: Double = 5, write: @escaping @Sendable (String) -> Void) {
        self.quiet = quiet
        self.terminal = terminal
        self.interval = interval
        self.write = write
    }

    public func line(_ text: String) {
        guard !quiet else { return }
        state.finish { pending in
            if let pending, !terminal { write(pending + "\n") }
        }
        if terminal && state.drawn { write("\n") }
        state.reset()
        write(text + "\n")
    }

    /// The progress of `label` (with `detail` beside it, which may change between calls) after `seconds`: `done`
    /// of `total` bytes.
    public func progress(_ label: String, detail: String? = nil, done: UInt64, total: UInt64, seconds: Double) {
        guard !quiet else { return }
        let shown = detail.map { "\(label) (\($0))" } ?? label
        let text = Self.progressText(shown, done: done, total: total, seconds: seconds, terminal: terminal)
        if terminal {
            state.draw()
            write("\r" + text + "   ")
        } else {
            for line in state.due(label: label, seconds: seconds, interval: interval, text: text) { write(line + "\n") }
        }
    }

    /// A long step without a byte count (debootstrap, apt): `label: 45 s, what it got through`, redrawn on a
    /// terminal, a line every `interval` seconds elsewhere.
    public func activity(_ label: String, _ text: String, seconds: Double) {
        guard !quiet else { return }
        let line = "\(label): \(Int(seconds)) s, \(text)"
        if terminal {
            state.draw()
            write("\r" + line + "   ")
        } else {
            for line in state.due(label: label, seconds: seconds, interval: interval, text: line) { write(line + "\n") }
        }
    }

    public func endProgress() {
        guard !quiet else { return }
        if terminal {
            if state.drawn { write("\n") }
        } else {
            state.finish { pending in if let pending { write(pending + "\n") } }
        }
        state.reset()
    }

    /// `writing [#########           ]  45%  123.4 MiB of 274.0 MiB  56.7 MiB/s  0:05 left` on a terminal;
    /// `writing: 45%, 123.4 MiB of 274.0 MiB, 56.7 MiB/s, 5 s left` elsewhere.
    public static func progressText(_ label: String, done: UInt64, total: UInt64, seconds: Double, terminal: Bool) -> String {
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        let percent = Int(fraction * 100)
        let rate = seconds > 0 ? Double(done) / seconds : 0
        let left: String
        if done >= total {
            left = String(format: terminal ? "%@ in total" : "done in %.1f s", terminal ? clock(seconds) : seconds as CVarArg)
        } else if rate > 0 {
            let remaining = Double(total - done) / rate
            left = terminal ? clock(remaining) + " left" : "\(Int(remaining.rounded(.up))) s left"
        } else {
            left = terminal ? "-:-- left" : "time left not known yet"
        }
        let sizes = "\(BlockMap.humanSize(done)) of \(BlockMap.humanSize(total))"
        let speed = String(format: "%.1f MiB/s", rate / 1_048_576)
        if terminal {
            let width = 20
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
            return String(format: "%@ [%@] %3d%%  %@  %@  %@", label, bar, percent, sizes, speed, left)
        }
        return "\(label): \(percent)%, \(sizes), \(speed), \(left)"
    }

    /// `1:05`, `12:00`, `1:02:03`.
    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60)
        return hours > 0 ? String(format: "%d:%02d:%02d", hours, minutes, secs) : String(format: "%d:%02d", minutes, secs)
    }
}

/// What a reporter has shown of the operation in progress (shared by its copies, which the flash's threads hold).
private final class ProgressState: @unchecked Sendable {
    private let lock = NSLock()
    private var lastLabel: String?
    private var lastShown: Double = -.infinity
    private var pending: String?
    private var drawnLine = false

    var drawn: Bool { lock.withLock { drawnLine } }

    func draw() { lock.withLock { drawnLine = true } }

    /// The plain lines due for `label` at `seconds`: the first of an operation (after the last state of the one
    /// before, when that was not shown), then one every `interval`. The text not shown is kept for the line that ends
    /// the operation.
    func due(label: String, seconds: Double, interval: Double, text: String) -> [String] {
        lock.withLock {
            if label != lastLabel {
                let before = pending.map { [$0] } ?? []
                (lastLabel, lastShown, pending) = (label, seconds, nil)
                return before + [text]
            }
            if seconds - lastShown >= interval {
                (lastShown, pending) = (seconds, nil)
                return [text]
            }
            pending = text
            return []
        }
    }

    /// Hands the text not shown yet (if any) to `body` and forgets it.
    func finish(_ body: (String?) -> Void) {
        let text = lock.withLock { () -> String? in
            defer { pending = nil }
            return pending
        }
        body(text)
    }

    func reset() {
        lock.withLock {
            lastLabel = nil
            lastShown = -.infinity
            pending = nil
            drawnLine = false
        }
    }
}
