import Foundation
@testable import ImageBuilder
import Synchronization
import Testing

/// Progress for a terminal and for a log (issue: "Progress"): a redrawn bar with the rate and the time left on a
/// terminal; elsewhere one plain line every few seconds of the operation, the last state when it ends, never `\r`.
@Suite("Progress lines")
struct ReporterTests {
    final class Sink: Sendable {
        let text = Mutex("")
        func append(_ piece: String) { text.withLock { $0 += piece } }
        var value: String { text.withLock { $0 } }
    }

    @Test("a log gets a line every 5 s of the operation, the last state at its end, and the next operation's first")
    func plainLinesForALog() {
        let sink = Sink()
        let reporter = Reporter(quiet: false, terminal: false, interval: 5) { sink.append($0) }
        let total: UInt64 = 100 << 20
        for tenth in 1...100 {  // 10 s, 10 MiB/s
            let seconds = Double(tenth) / 10
            reporter.progress("writing", detail: "verified \(tenth / 2)%", done: UInt64(Double(total) * seconds / 10), total: total,
                              seconds: seconds)
        }
        reporter.progress("verifying", done: 50 << 20, total: total, seconds: 10.5)
        reporter.progress("verifying", done: 100 << 20, total: total, seconds: 11)
        reporter.endProgress()
        reporter.line("done")
        #expect(sink.value == """
            writing (verified 0%): 1%, 1.0 MiB of 100.0 MiB, 10.0 MiB/s, 10 s left
            writing (verified 25%): 50%, 51.0 MiB of 100.0 MiB, 10.0 MiB/s, 5 s left
            writing (verified 50%): 100%, 100.0 MiB of 100.0 MiB, 10.0 MiB/s, done in 10.0 s
            verifying: 50%, 50.0 MiB of 100.0 MiB, 4.8 MiB/s, 11 s left
            verifying: 100%, 100.0 MiB of 100.0 MiB, 9.1 MiB/s, done in 11.0 s
            done

            """, "\(sink.value)")
    }

    @Test("a terminal gets one line redrawn in place with a bar and the time left, ended before the next line")
    func barOnATerminal() {
        let sink = Sink()
        let reporter = Reporter(quiet: false, terminal: true) { sink.append($0) }
        reporter.progress("writing", done: 25 << 20, total: 100 << 20, seconds: 2)
        reporter.progress("writing", done: 100 << 20, total: 100 << 20, seconds: 65)
        reporter.line("wrote it")
        #expect(sink.value == "\rwriting [#####               ]  25%  25.0 MiB of 100.0 MiB  12.5 MiB/s  0:06 left   "
            + "\rwriting [####################] 100%  100.0 MiB of 100.0 MiB  1.5 MiB/s  1:05 in total   \nwrote it\n",
                "\(sink.value.debugDescription)")
    }

    @Test("debootstrap's and apt's lines counted as packages retrieved, unpacked, configured", arguments: [
        ("I: Retrieving InRelease ", PackageCounter()),
        ("I: Retrieving Packages ", PackageCounter()),
        ("I: Retrieving libc6 2.36-9+deb12u9", PackageCounter(retrieved: 1)),
        ("I: Unpacking the base system...", PackageCounter()),
        ("I: Unpacking libc6...", PackageCounter(unpacked: 1)),
        ("I: Configuring required packages...", PackageCounter()),
        ("I: Configuring libc6...", PackageCounter(configured: 1)),
        ("Get:12 http://deb.example/debian bookworm/main amd64 ceph-osd amd64 16.2.15 [20.1 MB]", PackageCounter(retrieved: 1)),
        ("Unpacking ceph-osd (16.2.15+ds-0+deb12u1) ...", PackageCounter(unpacked: 1)),
        ("Setting up ceph-osd (16.2.15+ds-0+deb12u1) ...", PackageCounter(configured: 1)),
        ("Reading package lists...", PackageCounter()),
    ])
    func countsPackages(line: String, expected: PackageCounter) {
        var counter = PackageCounter()
        _ = counter.take(line)
        #expect(counter == expected)
    }

    @Test("a long step without bytes: elapsed seconds and what it got through, every 5 s in a log")
    func activityInALog() {
        let sink = Sink()
        let reporter = Reporter(quiet: false, terminal: false, interval: 5) { sink.append($0) }
        var counter = PackageCounter()
        for second in 0..<12 {
            _ = counter.take("I: Retrieving package\(second)")
            reporter.activity("debootstrap", counter.summary, seconds: Double(second))
        }
        reporter.endProgress()
        #expect(sink.value == """
            debootstrap: 0 s, 1 packages retrieved, 0 unpacked, 0 configured
            debootstrap: 5 s, 6 packages retrieved, 0 unpacked, 0 configured
            debootstrap: 10 s, 11 packages retrieved, 0 unpacked, 0 configured
            debootstrap: 11 s, 12 packages retrieved, 0 unpacked, 0 configured

            """, "\(sink.value)")
    }

    @Test("--quiet writes nothing")
    func quiet() {
        let sink = Sink()
        let reporter = Reporter(quiet: true, terminal: false) { sink.append($0) }
        reporter.progress("writing", done: 1, total: 2, seconds: 1)
        reporter.endProgress()
        reporter.line("x")
        #expect(sink.value.isEmpty)
    }

    @Test("time left: unknown before any byte, hours on a terminal", arguments: [
        (UInt64(0), UInt64(100), 1.0, false, "writing: 0%, 0 bytes of 100 bytes, 0.0 MiB/s, time left not known yet"),
        (UInt64(0), UInt64(100), 1.0, true, "writing [                    ]   0%  0 bytes of 100 bytes  0.0 MiB/s  -:-- left"),
        (UInt64(1 << 20), UInt64(4000 << 20), 1.0, true,
         "writing [                    ]   0%  1.0 MiB of 3.9 GiB  1.0 MiB/s  1:06:39 left"),
    ])
    func timeLeft(done: UInt64, total: UInt64, seconds: Double, terminal: Bool, expected: String) {
        #expect(Reporter.progressText("writing", done: done, total: total, seconds: seconds, terminal: terminal) == expected)
    }
}
