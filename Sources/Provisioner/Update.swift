import Archive
import BootSlots
import Exec
import Foundation
import GPT
import ImageFormat
import Logging

/// A/B updates of the boot stick: write a new image's root into the slot that is not running and boot it on trial
/// (systemd-boot boot counting, `+3`); mark it good once FirstBoot and the Provisioner succeeded on it; report a
/// rollback when its tries ran out and the old slot booted again. See docs/image.md.
public struct SlotUpdater {
    /// The stick (a disk or, in tests, an image file) and the running root's PARTUUID.
    public var stick: BootStick
    public var runningRoot: String
    public var events: EventLog
    /// Where downloads, decompressed images and the new kernel wait (the state disk on a node).
    public var workDirectory: String
    public var logger: Logger

    public init(stick: BootStick, runningRoot: String, events: EventLog, workDirectory: String, logger: Logger) {
        self.stick = stick
        self.runningRoot = runningRoot
        self.events = events
        self.workDirectory = workDirectory
        self.logger = logger
    }

    /// The stick of the running system: the disk holding the partition `root=PARTUUID=` names.
    /// The updater of the stick this machine booted from (`root=PARTUUID=` of /proc/cmdline, its disk), with the
    /// events of `layout`'s root; `stick` and `runningRoot` override what is found.
    public static func running(layout: Layout, logger: Logger, stick: String? = nil, runningRoot: String? = nil) throws -> SlotUpdater {
        let partition = try runningRoot ?? Self.runningRoot(commandLine: (try? String(contentsOfFile: "/proc/cmdline", encoding: .utf8)) ?? "")
        let disk = try stick ?? BootStick.disk(holding: partition)
        return SlotUpdater(stick: try BootStick.open(disk), runningRoot: partition, events: EventLog(path: layout.eventsFile),
                           workDirectory: layout.aquariumState + "/update", logger: logger)
    }

    public static func runningRoot(commandLine: String) throws(ProvisionError) -> String {
        guard let uuid = rootPartitionUUID(commandLine: commandLine) else {
            throw .refused("the kernel command line has no root=PARTUUID= (nor aquarium.verity.partuuid=): this system did not boot from an Aquarium stick")
        }
        return uuid
    }

    public struct Installed: Sendable, Equatable {
        public var slot: Slot
        public var release: String
        public var entryFileName: String
        public var bytesWritten: UInt64

        public init(slot: Slot, release: String, entryFileName: String, bytesWritten: UInt64) {
            self.slot = slot
            self.release = release
            self.entryFileName = entryFileName
            self.bytesWritten = bytesWritten
        }
    }

    /// Writes `image` (a local `.raw`, `.raw.zst` or an http(s) URL) into the inactive slot and makes it the entry booted
    /// next, on trial. Before anything is written, the image is checked against its bmap (`bmap`).
    public func install(image source: String, bmap: BmapSource = .beside) throws(ProvisionError) -> Installed {
        try stick.refuseLocked()
        try reconcileGRUB()
        let view = try SlotsView.read(stick, runningRoot: runningRoot)
        guard let running = view.running else {
            throw .refused("the running root (PARTUUID \(runningRoot)) is neither \(Slot.a.name) nor \(Slot.b.name) of \(stick.disk)")
        }
        let plan: UpdatePlan
        do {
            plan = try UpdatePlan.make(running: running, entries: view.bootEntries.map { ($0.file, $0.entry?.generation) })
        } catch { throw .refused("\(stick.disk): \(error)") }
        guard let target = stick.slots[plan.target] else { throw .failed("\(stick.disk): no \(plan.target.name)") }

        try FileManager.default.createDirectoryIfNeeded(workDirectory)
        let scratch = workDirectory + "/update-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectoryIfNeeded(scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let (image, compression) = try UpdateImage.fetch(source, into: scratch)

        // The new image: an A/B image whose slot A holds its root and whose ESP has slot A's entry, kernel and initrd.
        let newImage: BootStick
        do { newImage = try BootStick.open(image) } catch {
            if case .refused(let reason) = error {
                throw .refused("\(source) is not an A/B image (\(reason)); build it with an aquarium-image that makes A/B slots")
            }
            throw error
        }
        guard let newRoot = newImage.slots[.a] else { throw .refused("\(source): no \(Slot.a.partitionName)") }
        let newESP = newImage.espVolume
        let entryText = String(decoding: try newESP.read("\(StickNames.entriesDirectory)/\(Slot.a.entryStem).conf"), as: UTF8.self)
        guard let newEntry = SlotEntry.parse(entryText) else {
            throw .refused("\(source): its loader entry \(Slot.a.entryStem).conf is not one aquarium-image writes")
        }
        guard newRoot.sizeBytes <= target.sizeBytes else {
            throw .refused("\(source): its root (\(newRoot.sizeBytes >> 20) MiB) does not fit \(plan.target.name) of \(stick.disk) "
                           + "(\(target.sizeBytes >> 20) MiB); reflash the stick with the new image")
        }
        let checked = try UpdateImage.verify(image, source: source, compression: compression, bmap: bmap, scratch: scratch)
        logger.info("\(source): \(checked)")
        for file in ["vmlinuz", "initrd.img"] {
            let data = try newESP.read("\(Slot.a.bootDirectory)/\(file)")
            guard FileManager.default.createFile(atPath: scratch + "/" + file, contents: data) else {
                throw .failed("\(scratch)/\(file): cannot write the new \(file)")
            }
        }
        events.append(ProvisionEvent(event: "update.started", detail: "\(newEntry.release) from \(source) into \(plan.target.name); "
                                     + "running \(currentRelease(view) ?? "?") in \(running.name)"))
        logger.info("writing \(newEntry.release) into \(plan.target.name) of \(stick.disk)")

        // Nothing may boot the target slot while it is being written: its entries go first.
        let esp = stick.espVolume
        for name in plan.remove { try esp.delete("\(StickNames.entriesDirectory)/\(name)") }
        try writeGRUB(scratch: scratch)
        RangeCopy.sync(stick.disk)
        let written = try RangeCopy.copyVerified(source: image, sourceOffset: newRoot.offsetBytes, length: newRoot.sizeBytes,
                                                 target: stick.disk, targetOffset: target.offsetBytes)
        for file in ["vmlinuz", "initrd.img"] {
            try esp.write(file: scratch + "/" + file, to: "\(plan.target.bootDirectory)/\(file)")
        }
        // Last: the entry, with its tries. Its generation sorts it first, so it is what boots next.
        let entry = SlotEntry(slot: plan.target, release: newEntry.release, generation: plan.generation,
                              rootPartitionUUID: target.uuid, commandLine: newEntry.commandLine)
        try esp.write(text: entry.text, to: "\(StickNames.entriesDirectory)/\(plan.entryFileName)", scratch: scratch)
        try writeGRUB(scratch: scratch)
        RangeCopy.sync(stick.disk)
        record(ProvisionEvent(event: "update.written", changed: true,
                                     detail: "\(newEntry.release) in \(plan.target.name) (\(checked); \(written) bytes written and read back); "
                                     + "the next boot tries it \(StickNames.trialTries) times, then falls back to \(running.name)"))
        return Installed(slot: plan.target, release: newEntry.release, entryFileName: plan.entryFileName, bytesWritten: written)
    }

    /// Makes the other slot's good release boot next, on trial (`update rollback`): its entry is written again with the
    /// next generation and `+3` tries; the running slot's entry stays as the fallback. Refused when the other slot is
    /// empty, holds a failed or not yet booted release, or the running slot is itself still on trial.
    public func rollback() throws(ProvisionError) -> Installed {
        try stick.refuseLocked()
        try reconcileGRUB()
        let view = try SlotsView.read(stick, runningRoot: runningRoot)
        guard let running = view.running else {
            throw .refused("the running root (PARTUUID \(runningRoot)) is neither \(Slot.a.name) nor \(Slot.b.name) of \(stick.disk)")
        }
        let plan: SwitchPlan
        do {
            plan = try SwitchPlan.make(running: running, entries: view.entries.map { ($0.file, $0.entry?.generation) })
        } catch { throw .refused("\(stick.disk): \(error)") }
        guard var entry = view.entries.first(where: { $0.file == plan.source })?.entry else {
            throw .failed("\(stick.disk): cannot read the loader entry \(plan.source)")
        }
        let esp = stick.espVolume
        let kernel = try esp.list(plan.target.bootDirectory)
        guard kernel.contains("vmlinuz") && kernel.contains("initrd.img") else {
            throw .refused("\(stick.disk): \(plan.target.name)'s kernel or initrd is missing from the ESP (\(plan.target.bootDirectory)); "
                + "install an image into it with `update install` instead")
        }
        entry.generation = plan.generation
        try FileManager.default.createDirectoryIfNeeded(workDirectory)
        let from = currentRelease(view) ?? "?"
        // The new entry first: from here on it is what boots next; then the old good one goes.
        try esp.write(text: entry.text, to: "\(StickNames.entriesDirectory)/\(plan.entryFileName)", scratch: workDirectory)
        try esp.delete("\(StickNames.entriesDirectory)/\(plan.source)")
        try writeGRUB(scratch: workDirectory)
        RangeCopy.sync(stick.disk)
        record(ProvisionEvent(event: "update.rollback", changed: true,
                              detail: "\(entry.release) in \(plan.target.name) boots next, on trial (\(StickNames.trialTries) tries), "
                              + "instead of \(from) in \(running.name), which stays as the fallback"))
        return Installed(slot: plan.target, release: entry.release, entryFileName: plan.entryFileName, bytesWritten: 0)
    }

    /// Appends an event and flushes the log to disk: these are written just before a reboot, or as the last thing a
    /// boot does before it is switched off.
    func record(_ event: ProvisionEvent) {
        events.append(event)
        RangeCopy.sync(events.path, writable: false)
    }

    func currentRelease(_ view: SlotsView) -> String? {
        view.entries.first { $0.name?.slot == view.running && $0.file.hasSuffix(".conf") }?.entry?.release
    }

    /// Marks the running slot's counted entry good (what systemd-bless-boot does: the counter leaves the file name).
    /// `countedEntry` is the file name from LoaderBootCountPath; nil: not a counted boot, nothing to do.
    public func bless(countedEntry: String?) throws(ProvisionError) -> String? {
        guard let countedEntry, let name = EntryFileName(countedEntry), name.isCounting else { return nil }
        try reconcileGRUB()
        let view = try SlotsView.read(stick, runningRoot: runningRoot)
        guard let slot = name.slot, slot == view.running else {
            throw .refused("the counted entry \(countedEntry) is not the running slot's (\(view.running?.name ?? "unknown")); not marking it good")
        }
        let esp = stick.espVolume
        let files = view.entries.map(\.file)
        guard files.contains(countedEntry) else {
            throw .failed("\(stick.disk): the counted entry \(countedEntry) is not on the ESP")
        }
        let good = name.blessed.fileName
        if files.contains(good) { try esp.delete("\(StickNames.entriesDirectory)/\(good)") }
        try esp.rename("\(StickNames.entriesDirectory)/\(countedEntry)", to: good)
        try FileManager.default.createDirectoryIfNeeded(workDirectory)
        try writeGRUB(scratch: workDirectory)
        RangeCopy.sync(stick.disk)
        let release = view.entries.first { $0.file == countedEntry }?.entry?.release ?? "?"
        let text = "\(release) in \(slot.name) is good: FirstBoot and the Provisioner succeeded on it (\(countedEntry) -> \(good))"
        record(ProvisionEvent(event: "update.blessed", changed: true, detail: text))
        return text
    }

    /// After a rollback: the other slot's entry has no tries left. Records what happened once (the entry is then
    /// renamed to `NAME.rolled-back`, which systemd-boot ignores) and returns the message.
    public func reportRollback() throws(ProvisionError) -> [String] {
        try reconcileGRUB()
        let view = try SlotsView.read(stick, runningRoot: runningRoot)
        guard let running = view.running else { return [] }
        var messages: [String] = []
        for info in view.bootEntries {
            guard let name = info.name, name.isExhausted, let slot = name.slot, slot != running else { continue }
            let failed = info.entry?.release ?? "?"
            let text = "the update to \(failed) failed: \(slot.name) used its \(name.triesDone ?? StickNames.trialTries) tries without "
                + "FirstBoot and the Provisioner succeeding, and the node rolled back to \(currentRelease(view) ?? "?") in \(running.name) "
                + "by itself, with its state as it was"
            try stick.espVolume.rename("\(StickNames.entriesDirectory)/\(info.file)", to: info.file + StickNames.rolledBackSuffix)
            try FileManager.default.createDirectoryIfNeeded(workDirectory)
            try writeGRUB(scratch: workDirectory)
            RangeCopy.sync(stick.disk)
            record(ProvisionEvent(event: "update.rolled-back", changed: true, detail: text))
            messages.append(text)
        }
        return messages
    }
}

/// Which bmap an update image is checked against before it is written.
public enum BmapSource: Equatable, Sendable, Codable {
    /// Beside the image (NAME.raw.bmap for NAME.raw or NAME.raw.zst, else IMAGE.bmap; for a URL, the same names at the
    /// URL); an image without one is refused.
    case beside
    /// This file (or URL).
    case file(String)
    /// Not checked (`--no-bmap`): only the read-back of what was written protects the slot.
    case unchecked
}

/// Where the update image comes from: a local file, or a URL fetched with curl (argv, never a shell).
enum UpdateImage {
    /// Checks the raw image (downloaded and decompressed already) against the bmap `bmap` says, refusing (exit 3) a
    /// damaged, truncated or different image before any byte of the slot is written. Returns what was checked.
    static func verify(_ raw: String, source: String, compression: StreamCompression?, bmap: BmapSource,
                       scratch: String) throws(ProvisionError) -> String {
        let candidates: [String]
        switch bmap {
        case .unchecked: return "not checked against a bmap (--no-bmap)"
        case .file(let path): candidates = [path]
        case .beside: candidates = ImageInput(path: source, compression: compression).bmapCandidates
        }
        var found: (name: String, text: String)?
        for candidate in candidates {
            if isURL(candidate) {
                let local = scratch + "/image.bmap"
                if (try? download(candidate, to: local)) != nil, let text = Files.read(local) { found = (candidate, text); break }
            } else if let text = Files.read(candidate) {
                found = (candidate, text)
                break
            }
        }
        guard let found else {
            if case .file(let path) = bmap { throw .invalidInput("\(path): no such bmap file") }
            throw .invalidInput("\(source): no bmap beside it (looked for \(candidates.joined(separator: ", "))), so it cannot be "
                + "checked before it is written; copy NAME.raw.bmap (made by `aquarium-image build`) beside it, pass --bmap "
                + "FILE, or --no-bmap to write it unchecked")
        }
        do {
            let map = try BlockMap.parse(found.text, subject: found.name)
            try map.verify(image: raw, subject: found.name)
            return "checked against \(found.name): \(map.ranges.count) ranges, \(map.mappedBytes) bytes"
        } catch {
            let text = "\(error.subject == raw ? source : error.subject): \(error.message)"
            switch error.kind {
            case .refused: throw .refused(text + "; nothing was written")
            case .invalidInput: throw .invalidInput(text)
            case .failure: throw .failed(text)
            }
        }
    }

    static func isURL(_ source: String) -> Bool { source.hasPrefix("http://") || source.hasPrefix("https://") }

    /// Downloads `url` to `path` with curl (argv, never a shell): fails on an HTTP error, follows redirects.
    static func download(_ url: String, to path: String) throws(ProvisionError) {
        do {
            try Command("curl", ["--fail", "--silent", "--show-error", "--location", "--output", path, "--", url]).run()
        } catch { throw .failedBecause("cannot download \(url): \(error)", cause: error) }
    }

    /// The raw image to read (downloaded and decompressed when needed), and the compression `source` had.
    static func fetch(_ source: String, into scratch: String) throws(ProvisionError) -> (String, StreamCompression?) {
        var path = source
        if isURL(source) {
            let name = URL(string: source)?.lastPathComponent ?? "image.raw"
            path = scratch + "/" + (name.isEmpty ? "image.raw" : name)
            try download(source, to: path)
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw .invalidInput("\(path): no such image (give a .raw, a .raw.zst or an http(s) URL)")
        }
        // The same magic the flash command reads: a disk image, or zstd/xz/gzip of one; anything else is refused here.
        let compression: StreamCompression?
        do { compression = try ImageInput.inspect(path).compression } catch {
            throw error.kind == .failure ? .failed("\(error.subject): \(error.message)") : .invalidInput("\(error.subject): \(error.message)")
        }
        if let compression {
            let raw = scratch + "/image.raw"
            try decompress(path, compression, to: raw)
            return (raw, compression)
        }
        return (path, nil)
    }
}

extension UpdateImage {
    /// Decompresses with libarchive (no zstd/xz/gzip program needed on the node) into a sparse file: all-zero 4 KiB
    /// blocks stay holes, so the slot copy writes only data, as a bmap would say.
    static func decompress(_ path: String, _ compression: StreamCompression, to raw: String) throws(ProvisionError) {
        let reader: DecompressingReader
        do { reader = try DecompressingReader(path: path, compression: compression) } catch {
            throw .invalidInput("\(path): \(error)")
        }
        let fd = Glibc.open(raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .failed("\(raw): cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        while true {
            var filled = 0
            // Fill whole 1 MiB buffers (libarchive returns short reads) so blocks stay 4 KiB aligned.
            while filled < buffer.count {
                let count: Int
                do {
                    count = try buffer.withUnsafeMutableBytes { whole throws(ArchiveError) in
                        try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: whole[filled...]))
                    }
                } catch { throw .invalidInput("\(path): \(error)") }
                if count == 0 { break }
                filled += count
            }
            if filled == 0 { break }
            var block = 0
            while block < filled {
                let size = min(4096, filled - block)
                let zero = buffer[block..<(block + size)].allSatisfy { $0 == 0 }
                if !zero {
                    let put = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress! + block, size, off_t(offset) + off_t(block)) }
                    guard put == size else { throw .failed("\(raw): write failed: \(String(cString: strerror(errno)))") }
                }
                block += size
            }
            offset += UInt64(filled)
            if filled < buffer.count { break }
        }
        do { try reader.close() } catch { throw .invalidInput("\(path): \(error)") }
        guard ftruncate(fd, off_t(offset)) == 0 else { throw .failed("\(raw): cannot size it: \(String(cString: strerror(errno)))") }
    }
}

extension FileManager {
    func createDirectoryIfNeeded(_ path: String) throws(ProvisionError) {
        do { try createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw .failedBecause("\(path): cannot create the directory", cause: error)
        }
    }
}
