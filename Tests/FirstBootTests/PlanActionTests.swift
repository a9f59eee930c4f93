import Crypto
import Disks
import Exec
@testable import FirstBoot
import Foundation
import Seed
import Testing
import TestSupport

/// The plan as typed actions: what each action is called and says, the action list of each mode, and — on loop
/// devices — that `apply` goes through exactly the list `plan` shows.
@Suite("Plan actions")
struct PlanActionTests {
    static let disk = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"

    @Test("each action: its step and its words", arguments: [
        (PlanAction.journal(disk: disk, resume: false), ApplyStep.journal,
         "record each step in the journal on \(disk) (bytes 524288-532479)"),
        (.journal(disk: disk, resume: true), .journal, "resume the interrupted first boot recorded in the step journal on \(disk)"),
        (.wipeSignatures(disk: disk, content: "holds xfs 'data'"), .wipe, "wipe \(disk): it holds xfs 'data'"),
        (.wipeSignatures(disk: disk, content: nil), .wipe, "wipe \(disk): clear any signatures and older journals"),
        (.partition(disk: disk, sectorSize: 4096), .partition,
         "create a GPT on \(disk) with partition 1 'aquarium-state' over the whole disk (1 MiB aligned, 4096-byte sectors"),
        (.setIdentities(disk: disk, partitionUUID: "0f1e"), .identities,
         "set the disk GUID of \(disk) and partition 1's /var type and PARTUUID 0f1e"),
        (.format(filesystem: "ext4"), .mkfs, "format it ext4 labelled 'aquarium'"),
        (.mount(disk: disk, reuse: false), .mount, "mount it at /var/lib/aquarium-system"),
        (.mount(disk: disk, reuse: true), .mount,
         "mount partition 'aquarium-state' of \(disk) at /var/lib/aquarium-system (no partitioning, no formatting)"),
        (.layout, .layout, "bind /var/lib/aquarium, /var/lib/ceph, /var/log from it, overlay /etc with its etc/upper"),
        (.writeRecord(storageDisks: 0), .record, "write the node record /var/lib/aquarium/node.json"),
        (.writeRecord(storageDisks: 2), .record, "write the node record /var/lib/aquarium/node.json with 2 storage disks"),
        (.complete(disk: disk), .complete, "mark the first boot complete in the journal on \(disk)"),
        (.handoff, .handoff, "hand off to aquarium-provision"),
    ])
    func action(_ action: PlanAction, step: ApplyStep, words: String) throws {
        #expect(action.step == step)
        #expect(action.description.hasPrefix(words), "\(action.description)")
        // In the JSON an action is its words.
        #expect(try JSONEncoder().encode([action]) == (try JSONEncoder().encode([action.description])))
    }

    @Test("apply's fault points: NodeContract's FaultPoint, a bare step means before, no mid points", arguments: [
        ("mkfs", FaultPoint(step: .mkfs) as FaultPoint?, "mkfs"),
        ("mkfs:before", FaultPoint(step: .mkfs), "mkfs"),
        ("partition-node:after", FaultPoint(step: .partitionNode, after: true), "partition-node:after"),
        ("handoff", FaultPoint(step: "handoff", when: .before), "handoff"),
        ("mkfs:mid", nil, ""), ("replication:mid", nil, ""), ("mount:sometime", nil, ""), ("", nil, ""),
    ])
    func faultPoints(text: String, expected: FaultPoint?, written: String) {
        let point = FaultPoint(apply: text)
        #expect(point == expected)
        if let point { #expect(point.description == written) }
        #expect(FaultPoint.all.count == 2 * ApplyStep.allCases.count)
        #expect(FaultPoint.all.allSatisfy { FaultPoint(apply: $0.description) == $0 })
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var disks: String
        var inventory: String
        var options = PlannerOptions()
        var steps: [ApplyStep]
        /// A text one of the actions must contain.
        var says: String
        var testDescription: String { name }
    }

    static let create: [ApplyStep] = [.journal, .wipe, .partition, .identities, .mkfs, .mount, .layout, .record, .complete, .handoff]

    static let cases: [Case] = [
        Case(name: "blank disk: create", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda"}]}"#,
             steps: create, says: "wipe /dev/sda: clear any signatures"),
        Case(name: "content under wipe always: create, wiping it", disks: "  system:\n    wipe: always\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda","signatures":[{"type":"xfs","usage":"filesystem","label":"data"}]}]}"#,
             steps: create, says: "wipe /dev/sda: it holds xfs 'data'"),
        Case(name: "this node's layout: mount only", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda","partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","uuid":"\#(PlannerTests.stateUUID)","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","fsType":"xfs"}]}]}"#,
             steps: [.mount, .layout, .record, .handoff], says: "(no partitioning, no formatting)"),
        Case(name: "an interrupted first boot: resume", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda","partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","uuid":"d6a3c6a2-6a2b-4c1e-9f6e-0a1b2c3d4e5f"}]}]}"#,
             options: PlannerOptions(journals: ["/dev/sda": PlannerTests.partialJournal]),
             steps: create, says: "resume the interrupted first boot"),
        Case(name: "one storage disk: the record names it", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda"},{"name":"sdb","sizeBytes":960197124096,"serial":"SN-sdb"}]}"#,
             steps: create, says: "with 1 storage disk"),
    ]

    @Test("each mode's action list, printed and in the JSON from the same values", arguments: cases)
    func actions(_ test: Case) throws {
        let plan = SystemDiskPlanner.plan(seed: try PlannerTests.seed(test.disks), inventory: try PlannerTests.inventory(test.inventory),
                                          options: test.options)
        #expect(plan.actions.map(\.step) == test.steps, "\(SystemDiskPlanner.render(plan))")
        #expect(plan.actions.contains { $0.description.contains(test.says) }, "\(SystemDiskPlanner.render(plan))")
        let words = plan.actions.map(\.description)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try plan.json().utf8)) as? [String: Any])
        #expect(object["actions"] as? [String] == words)
        let printed = SystemDiskPlanner.render(plan).split(separator: "\n").drop { $0 != "actions:" }.dropFirst()
        #expect(printed.map(String.init) == words.enumerated().map { "  \($0.offset + 1). \($0.element)" })
    }

    /// How the disk is found before the run whose plan and actions are compared.
    enum Scenario: String, CaseIterable, Sendable, CustomStringConvertible {
        case blank, sameBoot, reboot, resumeAfterMkfs
        var description: String { rawValue }
    }

    @Test("apply goes through exactly the actions plan shows", .requires(programs: ApplyDeviceTests.tools), .serialized,
          arguments: Scenario.allCases)
    func applyRunsThePlan(_ scenario: Scenario) throws {
        try LoopDevice.with(.init(sizeBytes: Harness.gib)) { disk in
            try Harness.withRoot { root in
                let path = try Harness.writeSeed(root + "/..", Harness.seedText())
                switch scenario {
                case .blank:
                    break
                case .sameBoot, .reboot:
                    #expect(try Harness.apply(seed: path, root: root, devices: [disk]).status == 0)
                    if scenario == .reboot { StateMounts.unmount(root: root) }
                case .resumeAfterMkfs:
                    #expect(try Harness.apply(seed: path, root: root, devices: [disk], extra: ["--fault-inject", "mkfs"]).killed)
                    StateMounts.unmount(root: root)
                }
                let data = try #require(FileManager.default.contents(atPath: path))
                let loaded = LoadedSeed(seed: try SeedLoader.parse(String(decoding: data, as: UTF8.self), file: path), path: path,
                                        sha256: SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined(),
                                        data: data, reportDirectory: nil, trust: "test")
                let engine = ApplyEngine(options: ApplyOptions(root: root, yes: true, onlyDevices: [disk.name], handoff: false,
                                                               machine: MachineFacts(dmiSerial: nil, macs: [])))
                let (plan, _) = try engine.plan(seed: loaded.seed)
                let result = try engine.run(seed: loaded)
                #expect(result.actions == plan.actions, "\(scenario): ran \(result.actions) of \(plan.actions)")
                #expect(result.plan.actions == result.actions)
                switch scenario {
                case .blank:
                    #expect(result.mode == .create)
                    #expect(result.stepsRun == ["wipe", "partition", "identities", "mkfs", "mount", "layout", "record", "handoff"])
                case .sameBoot, .reboot:
                    #expect(result.mode == .reuse)
                    #expect(result.stepsRun == ["mount", "layout", "record", "handoff"])
                case .resumeAfterMkfs:
                    #expect(result.mode == .resume)
                    #expect(result.stepsRun == ["mkfs", "mount", "layout", "record", "handoff"])
                }
                let journal = StepJournal.read(device: disk.path)
                #expect(journal?.isComplete == true)
                for action in result.actions where ApplyStep.journalled.contains(action.step) {
                    #expect(journal?.steps[action.step.rawValue] == "done", "\(scenario): \(action.step) in the journal")
                }
                try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)
                StateMounts.unmount(root: root)
            }
        }
    }
}
