import FileLayer
import Foundation
import GPT
import Logging

/// A mapped range whose bytes on the device are not what the bmap says.
public struct VerifyFailure: Error, CustomStringConvertible, Sendable, Equatable {
    public var device: String
    public var firstBlock: UInt64
    public var lastBlock: UInt64
    public var startByte: UInt64
    public var byteCount: UInt64

    public var description: String {
        "\(device): range \(firstBlock)-\(lastBlock) (bytes \(startByte)-\(startByte + byteCount - 1)) does not match the image: "
            + "the device is damaged or was changed after flashing; flash it again or use another stick"
    }
}

/// What flashing did.
public struct FlashReport: Sendable {
    public var bytesWritten: UInt64
    public var writeSeconds: Double
    public var verifySeconds: Double
    public var rangesVerified: Int
    public var gptRelocated: Bool
    /// True when the read-back ran while writing (direct I/O); `verifySeconds` is then what it took after the last write.
    public var verifyOverlapped: Bool
}

/// Writes an image's mapped ranges to a device, reads them back against the bmap's checksums, and
/// moves the backup GPT header to the device's end.
public struct Flasher {
    public var logger: Logger
    public var reporter: Reporter
    /// Write in chunks of this many bytes, syncing every `syncEvery` so progress shows real speed.
    public var chunkBytes = 4 << 20
    public var syncEvery: UInt64 = 64 << 20
    /// Called after each chunk is written to the device and before the verifier may read it back (tests use it to
    /// change a byte on the device, as a failing stick would).
    var afterWrite: (@Sendable (String, UInt64, Int) -> Void)?
    /// Called after the verifier has read a chunk back.
    var afterVerifyRead: (@Sendable (String, UInt64, Int) -> Void)?

    public init(logger: Logger = Logger(label: "aquarium.image.flash"), reporter: Reporter = Reporter(quiet: true)) {
        self.logger = logger
        self.reporter = reporter
    }

    /// The bmap for `image`: the given file, else IMAGE.bmap beside it, else one computed from the
    /// image's allocated extents.
    public static func loadBlockMap(image: String, bmap: String?) throws(ImageError) -> BlockMap {
        try loadBlockMap(input: ImageInput(path: image, compression: nil), bmap: bmap)
    }

    /// The bmap for `input`. A raw image: the given file, else IMAGE.bmap beside it, else one computed from the
    /// image's allocated extents. A compressed image: the given file, else the raw image's bmap beside it
    /// (NAME.raw.bmap for NAME.raw.zst), else IMAGE.bmap; without one it is refused, as a stream has no extents.
    public static func loadBlockMap(input: ImageInput, bmap: String?) throws(ImageError) -> BlockMap {
        let image = input.path
        let candidates = bmap.map { [$0] } ?? (input.compression == nil ? [image + ".bmap"] : input.bmapCandidates)
        guard let candidate = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            if let bmap { throw .invalid(bmap, "the bmap file does not exist") }
            if input.compression != nil {
                throw .invalid(image, "is \(input.compression!.rawValue)-compressed and has no bmap of its raw image "
                               + "(looked for \(candidates.joined(separator: ", "))); put NAME.raw.bmap beside it, pass "
                               + "--bmap FILE, or decompress it (`\(input.decompressCommand)`) and use the raw image")
            }
            return try BlockMap.create(imagePath: image)
        }
        guard let data = FileManager.default.contents(atPath: candidate), let text = String(data: data, encoding: .utf8) else {
            throw .invalid(candidate, "cannot read the bmap file")
        }
        if ImageInput.classify(Array(data.prefix(16))) != .unknown {
            throw .invalid(candidate, "is not a bmap file (it starts like an image or a compressed stream)")
        }
        let map = try BlockMap.parse(text, subject: candidate)
        if input.compression == nil {
            var info = stat()
            if stat(image, &info) == 0, UInt64(info.st_size) != map.imageSize {
                throw .invalid(candidate, "describes an image of \(map.imageSize) bytes, but \(image) has \(info.st_size)")
            }
        } else {
            // The decompressed length is checked when the stream ends; a stream cannot skip backwards.
            for (previous, next) in zip(map.ranges, map.ranges.dropFirst()) where next.first <= previous.last {
                throw .invalid(candidate, "range \(next.first)-\(next.last) does not follow \(previous.first)-\(previous.last); "
                               + "a compressed image needs ascending ranges: make the bmap again from the raw image")
            }
        }
        return map
    }

    /// Flashes after the safety checks passed. `device` must be the whole disk.
    public func flash(image: String, map: BlockMap, device: String, deviceBytes: UInt64, sectorSize: Int) throws(ImageError) -> FlashReport {
        try flash(input: ImageInput(path: image, compression: nil), map: map, device: device, deviceBytes: deviceBytes,
                  sectorSize: sectorSize)
    }

    /// Flashes a raw or compressed image after the safety checks passed. `device` must be the whole disk. A compressed
    /// image is decompressed on the fly: mapped ranges are written, the bytes between them decompressed and dropped.
    public func flash(input: ImageInput, map: BlockMap, device: String, deviceBytes: UInt64, sectorSize: Int) throws(ImageError) -> FlashReport {
        let image = input.path
        let source = try ImageReader(input)
        // O_EXCL on a block device: the kernel refuses while anything mounts or holds it.
        let target = open(device, O_WRONLY | O_EXCL | O_CLOEXEC)
        if target < 0 {
            if errno == EBUSY { throw .refused(device, FlashRefusal.busy.description) }
            throw .failure(device, "cannot open for writing: \(errnoText())")
        }
        var closed = false
        defer { if !closed { close(target) } }

        // A damaged image found while writing leaves a partial stick: say so.
        func partial(_ error: ImageError) -> ImageError {
            var error = error
            error.message += "; \(device) now holds a partial image: do not boot it, flash it again with a good image"
            return error
        }
        if let direct = OverlappedFlash.openDirect(device) {
            let outcome: (written: UInt64, verifyTail: Double, writeSeconds: Double)
            do {
                outcome = try OverlappedFlash(flasher: self, input: input, map: map, device: device)
                    .run(target: target, direct: direct, source: source, partial: partial)
            } catch {
                reporter.endProgress()
                throw error
            }
            reporter.endProgress()
            close(target)
            closed = true
            let checkStart = Date()
            let relocated = try relocateGPT(device: device, deviceBytes: deviceBytes, sectorSize: sectorSize)
            if relocated { try checkHead(input: input, device: device, deviceBytes: deviceBytes, sectorSize: sectorSize) }
            rereadPartitionTable(device)
            return FlashReport(bytesWritten: outcome.written, writeSeconds: outcome.writeSeconds,
                               verifySeconds: outcome.verifyTail + Date().timeIntervalSince(checkStart),
                               rangesVerified: map.ranges.count, gptRelocated: relocated, verifyOverlapped: true)
        }

        let total = map.mappedBytes
        var written: UInt64 = 0
        var sinceSync: UInt64 = 0
        let start = Date()
        var lastReport = Date.distantPast
        var buffer = [UInt8](repeating: 0, count: chunkBytes)
        for range in map.ranges {
            let (offset, count) = map.byteRange(of: range)
            var hasher = range.checksum.map { _ in AnyHasher(map.checksumType) }
            var done: UInt64 = 0
            while done < count {
                let want = Int(min(UInt64(chunkBytes), count - done))
                let n: Int
                do {
                    n = try source.read(into: &buffer, count: want, at: offset + done)
                } catch {
                    reporter.endProgress()
                    throw written > 0 ? partial(error) : error
                }
                guard n > 0 else {
                    let error = ImageError.invalid(image, input.compression == nil
                        ? "ends before byte \(offset + done); it is shorter than its bmap says"
                        : "decompresses to only \(offset + done) bytes, but its bmap describes an image of \(map.imageSize) bytes: "
                          + "the stream is cut off or the bmap belongs to another image; download or copy the image again and "
                          + "check it against SHA256SUMS")
                    reporter.endProgress()
                    throw written > 0 ? partial(error) : error
                }
                buffer.withUnsafeBytes { hasher?.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                try Self.writeAll(buffer, count: n, fd: target, at: offset + done, path: device)
                done += UInt64(n)
                written += UInt64(n)
                sinceSync += UInt64(n)
                if sinceSync >= syncEvery {
                    _ = fdatasync(target)
                    sinceSync = 0
                }
                if Date().timeIntervalSince(lastReport) >= 0.25 || written == total {
                    reporter.progress("writing", done: written, total: total, seconds: Date().timeIntervalSince(start))
                    lastReport = Date()
                }
            }
            if let expected = range.checksum, let hasher, hasher.hex() != expected {
                reporter.endProgress()
                throw partial(.invalid(image, "blocks \(range.first)-\(range.last) of the \(input.compression == nil ? "" : "decompressed ")"
                                       + "image do not match the bmap's checksum: the image or the bmap is damaged (check SHA256SUMS)"))
            }
        }
        do {
            try source.finish(expectedBytes: map.imageSize)
        } catch {
            reporter.endProgress()
            throw partial(error)
        }
        do {
            try FileIO.sync(target, path: device)
        } catch {
            throw .failure(device, "flushing the writes failed: \(error.errno)")
        }
        reporter.endProgress()
        let writeSeconds = Date().timeIntervalSince(start)
        close(target)
        closed = true

        let relocated = try relocateGPT(device: device, deviceBytes: deviceBytes, sectorSize: sectorSize)
        let verifyStart = Date()
        let verified = try verify(input: input, map: map, device: device)
        rereadPartitionTable(device)
        return FlashReport(bytesWritten: written, writeSeconds: writeSeconds, verifySeconds: Date().timeIntervalSince(verifyStart),
                           rangesVerified: verified, gptRelocated: relocated, verifyOverlapped: false)
    }

    /// After the backup GPT was moved: the device's first sectors (read from the device, not the page cache) are the
    /// image's with the protective MBR and the primary header as the move leaves them.
    func checkHead(input: ImageInput, device: String, deviceBytes: UInt64, sectorSize: Int) throws(ImageError) {
        let count = 34 * sectorSize
        let expected: [UInt8]?
        if input.compression == nil {
            expected = Self.relocatedHead(image: input.path, deviceBytes: deviceBytes, sectorSize: sectorSize)
        } else {
            let reader = try ImageReader(input)
            var bytes = [UInt8](repeating: 0, count: count)
            let n = try reader.read(into: &bytes, count: count, at: 0)
            expected = n == count ? Self.relocatedHead(head: bytes, deviceBytes: deviceBytes, sectorSize: sectorSize) : nil
        }
        guard let expected else { return }
        let fd = open(device, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failure(device, "cannot open for reading: \(errnoText())") }
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, off_t(count), POSIX_FADV_DONTNEED)
        var actual = [UInt8](repeating: 0, count: count)
        let n: Int
        do {
            n = try FileIO.read(fd, into: &actual, count: count, at: 0, path: device)
        } catch {
            throw .failure(device, "reading back the partition table failed: \(error.errno)")
        }
        if n != count || actual != expected {
            throw .failure(device, "its first \(count) bytes (the partition table, after the backup header was moved to the end) "
                           + "do not read back as written: the device is damaged; flash it again or use another stick")
        }
    }

    /// Asks the kernel to re-read the partition table so /dev/sdX1... match the new stick (best effort: a device
    /// without partition scanning, such as a plain loop device, says no, and nothing depends on it).
    func rereadPartitionTable(_ device: String) {
        let fd = open(device, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        // BLKRRPART
        if ioctl(fd, 0x125F) != 0 { logger.info("\(device): the kernel did not re-read the partition table: \(errnoText())") }
    }

    /// Moves the backup GPT header and array to the device's last sectors. False when the image has no GPT
    /// for this sector size (an image that is not ours: nothing to move).
    func relocateGPT(device: String, deviceBytes: UInt64, sectorSize: Int) throws(ImageError) -> Bool {
        guard var editor = try? GPTEditor(path: device, sectorSize: sectorSize) else {
            logger.info("\(device): no GPT with \(sectorSize)-byte sectors; the backup header is left as it is")
            return false
        }
        do {
            try editor.write(deviceSectorCount: deviceBytes / UInt64(sectorSize))
        } catch {
            throw .failure(device, "moving the backup GPT header to the end failed: \(error)")
        }
        return true
    }

    /// What the first sectors of a device flashed with `image` hold after the backup GPT was moved to
    /// the end of a device of `deviceBytes`: the protective MBR's size and the primary header change.
    static func relocatedHead(image: String, deviceBytes: UInt64, sectorSize: Int) -> [UInt8]? {
        let headBytes = 34 * sectorSize
        guard let handle = FileHandle(forReadingAtPath: image), let head = try? handle.read(upToCount: headBytes),
              head.count == headBytes else { return nil }
        try? handle.close()
        return relocatedHead(head: [UInt8](head), deviceBytes: deviceBytes, sectorSize: sectorSize)
    }

    /// The same for an image whose first `34 * sectorSize` bytes are `head`.
    static func relocatedHead(head: [UInt8], deviceBytes: UInt64, sectorSize: Int) -> [UInt8]? {
        let headBytes = 34 * sectorSize
        guard head.count == headBytes else { return nil }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-gpt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        guard FileManager.default.createFile(atPath: scratch, contents: Data(head)), truncate(scratch, off_t(deviceBytes)) == 0,
              var editor = try? GPTEditor(path: scratch, sectorSize: sectorSize),
              (try? editor.write(deviceSectorCount: deviceBytes / UInt64(sectorSize))) != nil,
              let reader = FileHandle(forReadingAtPath: scratch), let patched = try? reader.read(upToCount: headBytes) else {
            return nil
        }
        try? reader.close()
        return Array(patched)
    }

    /// Reads every mapped range back from `device` and compares it with the bmap's checksum (with the
    /// GPT head as flashing leaves it). Throws `VerifyFailure` naming the first bad range. Returns the
    /// number of ranges checked.
    @discardableResult
    public func verify(image: String, map: BlockMap, device: String) throws(ImageError) -> Int {
        try verify(input: ImageInput(path: image, compression: nil), map: map, device: device)
    }

    /// `verify` for a raw or compressed image. For a compressed one every mapped range is decompressed and hashed
    /// (checked against the bmap's checksum too) and compared with the device's bytes; the stream must end exactly
    /// at the image's size.
    @discardableResult
    public func verify(input: ImageInput, map: BlockMap, device: String) throws(ImageError) -> Int {
        let image = input.path
        let fd = open(device, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid(device, "cannot open for reading: \(errnoText())") }
        defer { close(fd) }
        // Read the device, not the page cache.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        var info = stat()
        let deviceBytes = Self.sizeOf(fd: fd, info: &info)
        let sectorSize = Self.sectorSize(fd: fd, info: info)
        let head: [UInt8]?
        if input.compression == nil {
            head = Self.relocatedHead(image: image, deviceBytes: deviceBytes, sectorSize: sectorSize)
        } else {
            let reader = try ImageReader(input)
            var bytes = [UInt8](repeating: 0, count: 34 * sectorSize)
            let n = try reader.read(into: &bytes, count: bytes.count, at: 0)
            head = n == bytes.count ? Self.relocatedHead(head: bytes, deviceBytes: deviceBytes, sectorSize: sectorSize) : nil
        }
        let stream = input.compression == nil ? nil : try ImageReader(input)
        let total = map.mappedBytes
        var checked: UInt64 = 0
        let start = Date()
        var lastReport = Date.distantPast
        for range in map.ranges {
            let (offset, count) = map.byteRange(of: range)
            var expected: String
            if let stream {
                // The raw bytes come from the stream: check them against the bmap, expect them (with the GPT head
                // as flashing left it) on the device.
                let sums = try Self.digest(of: stream, offset: offset, count: count, patch: head ?? [], type: map.checksumType)
                if let stated = range.checksum, stated != sums.plain {
                    reporter.endProgress()
                    throw .invalid(image, "blocks \(range.first)-\(range.last) of the decompressed image do not match the bmap's "
                                   + "checksum: the image or the bmap is damaged (check SHA256SUMS)")
                }
                expected = sums.patched
            } else {
                guard let expectedSum = range.checksum else { continue }
                expected = expectedSum
                if let head, offset < UInt64(head.count) {
                    // This range holds the GPT head that flashing rewrote: expect the image's bytes patched with it.
                    expected = try Self.digest(of: image, offset: offset, count: count, patch: head, type: map.checksumType)
                }
            }
            let actual = try BlockMap.digest(fd: fd, path: device, offset: offset, count: count, type: map.checksumType)
            checked += count
            if Date().timeIntervalSince(lastReport) >= 0.25 || checked == total {
                reporter.progress("verifying", done: checked, total: total, seconds: Date().timeIntervalSince(start))
                lastReport = Date()
            }
            if actual != expected {
                reporter.endProgress()
                let failure = VerifyFailure(device: device, firstBlock: range.first, lastBlock: range.last, startByte: offset, byteCount: count)
                throw .failure(device, failure.description.replacingOccurrences(of: "\(device): ", with: ""))
            }
        }
        try stream?.finish(expectedBytes: map.imageSize)
        reporter.endProgress()
        return map.ranges.count
    }

    /// The digests of `count` bytes at `offset` of a (decompressing) reader: as they are, and with `patch` laid over
    /// the image's first bytes.
    static func digest(of reader: ImageReader, offset: UInt64, count: UInt64, patch: [UInt8],
                       type: BlockMap.ChecksumType) throws(ImageError) -> (plain: String, patched: String) {
        var plain = AnyHasher(type)
        var patched = AnyHasher(type)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var done: UInt64 = 0
        while done < count {
            let want = Int(min(UInt64(buffer.count), count - done))
            let n = try reader.read(into: &buffer, count: want, at: offset + done)
            guard n > 0 else {
                throw .invalid(reader.input.path, "decompresses to only \(offset + done) bytes, fewer than its bmap describes: the "
                               + "stream is cut off or the bmap belongs to another image; download or copy the image again")
            }
            buffer.withUnsafeBytes { plain.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            let position = offset + done
            if position < UInt64(patch.count) {
                var bytes = Array(buffer[0..<n])
                let end = min(Int(position) + n, patch.count)
                for index in Int(position)..<end { bytes[index - Int(position)] = patch[index] }
                bytes.withUnsafeBytes { patched.update($0) }
            } else {
                buffer.withUnsafeBytes { patched.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            done += UInt64(n)
        }
        return (plain.hex(), patched.hex())
    }

    static func digest(of image: String, offset: UInt64, count: UInt64, patch: [UInt8], type: BlockMap.ChecksumType) throws(ImageError) -> String {
        guard let handle = FileHandle(forReadingAtPath: image) else { throw .invalid(image, "cannot open the image") }
        defer { try? handle.close() }
        var hasher = AnyHasher(type)
        var done: UInt64 = 0
        while done < count {
            let want = Int(min(UInt64(1 << 20), count - done))
            guard (try? handle.seek(toOffset: offset + done)) != nil, let data = try? handle.read(upToCount: want), !data.isEmpty else {
                throw .failure(image, "cannot read byte \(offset + done)")
            }
            var bytes = [UInt8](data)
            let position = offset + done
            if position < UInt64(patch.count) {
                let end = min(Int(position) + bytes.count, patch.count)
                for index in Int(position)..<end { bytes[index - Int(position)] = patch[index] }
            }
            bytes.withUnsafeBytes { hasher.update($0) }
            done += UInt64(bytes.count)
        }
        return hasher.hex()
    }

    static func sizeOf(fd: Int32, info: inout stat) -> UInt64 {
        _ = fstat(fd, &info)
        if info.st_mode & S_IFMT == S_IFBLK {
            let end = lseek(fd, 0, SEEK_END)
            _ = lseek(fd, 0, SEEK_SET)
            return end > 0 ? UInt64(end) : 0
        }
        return UInt64(info.st_size)
    }

    static func sectorSize(fd: Int32, info: stat) -> Int {
        guard info.st_mode & S_IFMT == S_IFBLK else { return 512 }
        var size: Int32 = 512
        // BLKSSZGET
        return ioctl(fd, 0x1268, &size) == 0 && size > 0 ? Int(size) : 512
    }

    static func writeAll(_ buffer: [UInt8], count: Int, fd: Int32, at offset: UInt64, path: String) throws(ImageError) {
        do {
            try FileIO.write(fd, buffer, count: count, at: offset, path: path)
        } catch {
            throw .failure(path, "write failed at byte \(error.offset ?? offset): \(error.errno)")
        }
    }
}
