import FileLayer
import Foundation
import ImageFormat

/// Flashing with the read-back verify overlapping the writes: the writer writes each chunk of the mapped ranges with
/// direct I/O (no page cache: the bytes go to the device, and nothing cached can answer the read-back), and a verifier
/// thread reads what has been written back from the device, also with direct I/O, hashing each range and comparing
/// it with the writer's digest of the image bytes it wrote (themselves checked against the bmap's checksum when it has
/// one). The flash then costs about the longer of writing and reading back, not their sum.
struct OverlappedFlash {
    /// Direct I/O alignment: buffer addresses, offsets and lengths (the largest logical sector size in use).
    static let alignment = 4096

    let flasher: Flasher
    let input: ImageInput
    let map: BlockMap
    let device: String

    /// What the writer has done and what the verifier found, shared by both threads.
    final class Progress: @unchecked Sendable {
        let condition = NSCondition()
        /// Bytes of the mapped ranges (in bmap order) on the device.
        var written: UInt64 = 0
        /// The digest of the image bytes written, per range index, once the range is complete.
        var digests: [Int: String] = [:]
        /// Set by the writer when it stops, early or not.
        var writerDone = false
        /// The verifier's failure (a mismatch or a read error); the writer stops at its next chunk.
        var verifyError: ImageError?
        var verified: UInt64 = 0
        var verifierDone = false

        func update(_ body: (Progress) -> Void) {
            condition.lock()
            body(self)
            condition.broadcast()
            condition.unlock()
        }

        func read<T>(_ body: (Progress) -> T) -> T {
            condition.lock()
            defer { condition.unlock() }
            return body(self)
        }

        /// Waits until `ready` holds (checked under the lock after every change).
        func wait(until ready: (Progress) -> Bool) {
            condition.lock()
            while !ready(self) { condition.wait() }
            condition.unlock()
        }
    }

    /// A page-aligned buffer for direct I/O.
    final class AlignedBuffer {
        let pointer: UnsafeMutableRawPointer
        let count: Int

        init(count: Int) {
            var raw: UnsafeMutableRawPointer?
            precondition(posix_memalign(&raw, OverlappedFlash.alignment, count) == 0 && raw != nil, "out of memory")
            pointer = raw!
            self.count = count
        }

        deinit { free(pointer) }
    }

    /// Opens `device` for direct writing and reading; nil when direct I/O is not available (then the caller writes
    /// through the page cache and verifies afterwards).
    static func openDirect(_ device: String) -> (write: Int32, read: Int32)? {
        let write = open(device, O_WRONLY | O_CLOEXEC | FileIO.directFlag)
        guard write >= 0 else { return nil }
        let read = open(device, O_RDONLY | O_CLOEXEC | FileIO.directFlag)
        guard read >= 0 else {
            close(write)
            return nil
        }
        return (write, read)
    }

    /// Writes and verifies. `target` is the exclusive buffered descriptor (kept open by the caller: it holds the
    /// device against mounts, and writes the unaligned end of an image whose size is not a multiple of 4 KiB);
    /// `direct` the descriptors from `openDirect`, closed here. Returns the bytes written and the seconds the verify
    /// went on after the last write.
    func run(target: Int32, direct: (write: Int32, read: Int32), source: ImageReader,
             partial: (ImageError) -> ImageError) throws(ImageError) -> (written: UInt64, verifyTail: Double, writeSeconds: Double) {
        defer {
            close(direct.write)
            close(direct.read)
        }
        let progress = Progress()
        let total = map.mappedBytes
        let chunkBytes = flasher.chunkBytes, afterRead = flasher.afterVerifyRead, readFD = direct.read
        let verifier = Thread { [map, device] in
            Self.verify(map: map, device: device, fd: readFD, progress: progress, chunkBytes: chunkBytes, afterRead: afterRead)
        }
        verifier.start()
        // Whatever happens, the verifier is stopped and waited for before returning.
        var verifierJoined = false
        func joinVerifier() {
            guard !verifierJoined else { return }
            progress.update { $0.writerDone = true }
            progress.wait { $0.verifierDone }
            verifierJoined = true
        }
        defer { joinVerifier() }

        let start = Date()
        var lastReport = Date.distantPast
        let buffer = AlignedBuffer(count: flasher.chunkBytes)
        var written: UInt64 = 0
        for (index, range) in map.ranges.enumerated() {
            let (offset, count) = map.byteRange(of: range)
            var hasher = AnyHasher(map.checksumType)
            var done: UInt64 = 0
            while done < count {
                if let failure = progress.read({ $0.verifyError }) { throw failure }
                let want = Int(min(UInt64(flasher.chunkBytes), count - done))
                let n: Int
                do {
                    n = try source.read(into: UnsafeMutableRawBufferPointer(start: buffer.pointer, count: want), at: offset + done)
                } catch {
                    throw written > 0 ? partial(error) : error
                }
                guard n > 0 else {
                    let error = ImageError.invalid(input.path, input.compression == nil
                        ? "ends before byte \(offset + done); it is shorter than its bmap says"
                        : "decompresses to only \(offset + done) bytes, but its bmap describes an image of \(map.imageSize) bytes: "
                          + "the stream is cut off or the bmap belongs to another image; download or copy the image again and "
                          + "check it against SHA256SUMS")
                    throw written > 0 ? partial(error) : error
                }
                hasher.update(UnsafeRawBufferPointer(start: buffer.pointer, count: n))
                try write(buffer, count: n, at: offset + done, direct: direct.write, buffered: target)
                flasher.afterWrite?(device, offset + done, n)
                done += UInt64(n)
                written += UInt64(n)
                let finishedRange = done == count
                let digest = finishedRange ? hasher.hex() : nil
                progress.update {
                    $0.written = written
                    if let digest { $0.digests[index] = digest }
                }
                if Date().timeIntervalSince(lastReport) >= 0.25 || written == total {
                    let verified = progress.read { $0.verified }
                    flasher.reporter.progress("writing", detail: "verified \(verified * 100 / max(total, 1))%", done: written, total: total,
                                              seconds: Date().timeIntervalSince(start))
                    lastReport = Date()
                }
            }
            if let expected = range.checksum, progress.read({ $0.digests[index] }) != expected {
                throw partial(.invalid(input.path, "blocks \(range.first)-\(range.last) of the \(input.compression == nil ? "" : "decompressed ")"
                                       + "image do not match the bmap's checksum: the image or the bmap is damaged (check SHA256SUMS)"))
            }
        }
        do {
            try source.finish(expectedBytes: map.imageSize)
        } catch {
            throw partial(error)
        }
        do {
            try FileIO.sync(target, path: device)
        } catch {
            throw .failure(device, "flushing the writes failed: \(error.errno)")
        }
        let writeSeconds = Date().timeIntervalSince(start)
        let tailStart = Date()
        var lastVerifyReport = Date.distantPast
        progress.update { $0.writerDone = true }
        progress.condition.lock()
        while !progress.verifierDone {
            _ = progress.condition.wait(until: Date().addingTimeInterval(0.25))
            if Date().timeIntervalSince(lastVerifyReport) >= 0.25 {
                flasher.reporter.progress("verifying", done: progress.verified, total: total,
                                          seconds: Date().timeIntervalSince(start))
                lastVerifyReport = Date()
            }
        }
        let failure = progress.verifyError
        progress.condition.unlock()
        verifierJoined = true
        if let failure { throw failure }
        return (written, Date().timeIntervalSince(tailStart), writeSeconds)
    }

    /// Writes `count` bytes of `buffer` at `offset`: the 4 KiB-aligned part directly, an unaligned end through the page
    /// cache, then flushed and dropped from the cache so the verifier reads it from the device.
    private func write(_ buffer: AlignedBuffer, count: Int, at offset: UInt64, direct: Int32, buffered: Int32) throws(ImageError) {
        let aligned = offset % UInt64(Self.alignment) == 0 ? count - count % Self.alignment : 0
        var done = 0
        while done < aligned {
            let n = pwrite(direct, buffer.pointer + done, aligned - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .failure(device, "write failed at byte \(offset + UInt64(done)): \(errnoText())")
            }
            if n == 0 { throw .failure(device, "write made no progress at byte \(offset + UInt64(done))") }
            done += n
        }
        guard done < count else { return }
        do {
            try FileIO.write(buffered, UnsafeRawBufferPointer(start: buffer.pointer + done, count: count - done),
                             at: offset + UInt64(done), path: device)
            try FileIO.sync(buffered, path: device)
        } catch {
            throw .failure(device, "write failed at byte \(error.offset ?? offset + UInt64(done)): \(error.errno)")
        }
        _ = posix_fadvise(buffered, off_t(offset) + off_t(done), off_t(count - done), POSIX_FADV_DONTNEED)
    }

    /// The verifier thread: reads each range back as soon as the writer has written it and compares its digest with
    /// the writer's.
    private static func verify(map: BlockMap, device: String, fd: Int32, progress: Progress, chunkBytes: Int,
                               afterRead: (@Sendable (String, UInt64, Int) -> Void)?) {
        defer { progress.update { $0.verifierDone = true } }
        let buffer = AlignedBuffer(count: chunkBytes)
        var base: UInt64 = 0  // where this range starts in the written sequence
        for (index, range) in map.ranges.enumerated() {
            let (offset, count) = map.byteRange(of: range)
            var hasher = AnyHasher(map.checksumType)
            var done: UInt64 = 0
            while done < count {
                let want = Int(min(UInt64(chunkBytes), count - done))
                let needed = base + done + UInt64(want)
                progress.wait { $0.written >= needed || $0.writerDone }
                guard progress.read({ $0.written >= needed }) else { return }  // the writer stopped early
                let result = readBack(buffer, count: want, at: offset + done, fd: fd, device: device)
                switch result {
                case .failure(let error):
                    progress.update { $0.verifyError = error }
                    return
                case .success:
                    afterRead?(device, offset + done, want)
                    hasher.update(UnsafeRawBufferPointer(start: buffer.pointer, count: want))
                }
                done += UInt64(want)
                progress.update { $0.verified = base + done }
            }
            progress.wait { $0.digests[index] != nil || $0.writerDone }
            guard let expected = progress.read({ $0.digests[index] }) else { return }
            if hasher.hex() != expected {
                let failure = VerifyFailure(device: device, firstBlock: range.first, lastBlock: range.last, startByte: offset, byteCount: count)
                progress.update { $0.verifyError = .failure(device, failure.description.replacingOccurrences(of: "\(device): ", with: "")) }
                return
            }
            base += count
        }
    }

    private static func readBack(_ buffer: AlignedBuffer, count: Int, at offset: UInt64, fd: Int32, device: String) -> Result<Void, ImageError> {
        let aligned = offset % UInt64(alignment) == 0 ? count - count % alignment : 0
        var done = 0
        while done < aligned {
            let n = pread(fd, buffer.pointer + done, aligned - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.failure(device, "reading back byte \(offset + UInt64(done)) failed: \(errnoText())"))
            }
            if n == 0 { return .failure(.failure(device, "ends before byte \(offset + UInt64(done))")) }
            done += n
        }
        if done < count {
            // The unaligned end of the image, written through the page cache and dropped from it after its flush.
            let buffered = open(device, O_RDONLY | O_CLOEXEC)
            guard buffered >= 0 else { return .failure(.failure(device, "cannot open for reading: \(errnoText())")) }
            defer { close(buffered) }
            _ = posix_fadvise(buffered, off_t(offset) + off_t(done), off_t(count - done), POSIX_FADV_DONTNEED)
            do {
                let n = try FileIO.read(buffered, into: UnsafeMutableRawBufferPointer(start: buffer.pointer + done, count: count - done),
                                        at: offset + UInt64(done), path: device)
                if n < count - done { return .failure(.failure(device, "ends before byte \(offset + UInt64(done + n))")) }
            } catch {
                return .failure(.failure(device, "reading back byte \(error.offset ?? offset + UInt64(done)) failed: \(error.errno)"))
            }
        }
        return .success(())
    }
}
