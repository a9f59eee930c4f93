import Foundation
import Testing
import TestSupport

/// A fixture for scripts/check-run-tests, which runs scripts/run-tests against this suite to prove that the runner
/// fails a run that skipped a test under CI (and accepts it outside CI). It passes trivially in a normal run; with
/// AQUARIUM_RUNNER_FIXTURE=skip one test is skipped the way a disabled test is; with AQUARIUM_RUNNER_FIXTURE=hang one
/// test hangs (for the runner's time limit); with AQUARIUM_RUNNER_FIXTURE=missing one test asks for a program this machine
/// lacks through the `.requires` trait every device test uses (skipped outside CI, failed in CI).
@Suite("RunnerFixture")
struct RunnerFixtureTests {
    @Test("a test that check-run-tests can skip on purpose",
          .disabled(if: ProcessInfo.processInfo.environment["AQUARIUM_RUNNER_FIXTURE"] == "skip",
                    "AQUARIUM_RUNNER_FIXTURE=skip: skipped on purpose by scripts/check-run-tests"))
    func skippable() {
        #expect(ProcessInfo.processInfo.environment["AQUARIUM_RUNNER_FIXTURE"] != "skip")
    }

    @Test("a test whose capability check check-run-tests can make fail",
          .requires(root: false, programs: ProcessInfo.processInfo.environment["AQUARIUM_RUNNER_FIXTURE"] == "missing"
                        ? ["aquarium-no-such-tool"] : []))
    func needsAProgram() {}

    /// Always runs, so a run of this suite has a test count above zero whether or not the other one is skipped: in
    /// check-run-tests only the skip can fail the CI case.
    @Test("a test that always runs")
    func alwaysRuns() {
        let setting = ProcessInfo.processInfo.environment["AQUARIUM_RUNNER_FIXTURE"]
        // The fixture knows exactly these settings; anything else is a typo in check-run-tests.
        #expect([nil, "skip", "hang", "missing"].contains(setting))
        if setting == "hang" { sleep(600) }
    }
}
