import Disks
@testable import FirstBoot
import Foundation
import Seed
import Testing

/// The selection policy, table-driven from inventory documents (as `plan --inventory` reads them) and seed text.
@Suite("System disk planner")
struct PlannerTests {
    static let gib: UInt64 = 1 << 30

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        /// The `disks:` section of the seed (YAML, indented by two spaces under `disks:`), or "" for defaults.
        var disks: String
        /// An inventory JSON document.
        var inventory: String
        /// Kernel name of the expected system disk, or nil for a refusal.
        var system: String?
        var storage: [String] = []
        /// Kernel name -> a text every such disk's reasons must contain.
        var rejected: [String: String] = [:]
        var refusal: String?
        var mode: SystemDiskMode? = .create
        var options = PlannerOptions()
        /// Extra `host:` keys (YAML, indented by four spaces), e.g. `    reinstall: UUID\n`.
        var host = ""
        var testDescription: String { name }
    }

    static func seed(_ disks: String, hostname: String = "node1", host: String = "") throws -> Seed {
        // The selection cases are about disks: a monitor-only bootstrap node unless the case sets requirements.
        let requirements = host.contains("requirements:") ? "" : "  requirements: {storage_disks: 0}\n"
        let text = """
            version: 1
            host:
              hostname: \(hostname)
            \(requirements)\(host)cluster:
              role: bootstrap
            \(disks.isEmpty ? "" : "disks:\n" + disks)
            """
        return try SeedLoader.parse(text, file: "test-seed.yaml")
    }

    static func inventory(_ json: String) throws -> Inventory {
        try JSONDecoder().decode(Inventory.self, from: Data(json.utf8))
    }

    static let stateUUID = AquariumLayout.statePartitionUUID(cluster: "ceph", hostname: "node1")
    /// The node UUID of the layout "11111111-..." (no journal: derived from its PARTUUID).
    static let otherNode = AquariumLayout.derivedNodeUUID(partitionUUID: "11111111-2222-3333-4444-555555555555")
    /// An interrupted first boot of node1 that created the table but died before writing its identities.
    static let partialJournal = JournalRecord(
        sequence: 4, nodeUUID: "a6f0b2de-6a57-4c52-9a0b-2f0b5e0c1e11", hostname: "node1", cluster: "ceph",
        diskGUID: "2b7c6a8e-0c0d-4f57-8d0e-3c6f6a1b9d01", partitionUUID: stateUUID,
        filesystemUUID: "5d1f0c3e-9a7b-4e21-8c5d-0b6e2f4a7c90", filesystem: "xfs", startedAt: "2026-11-28T09:00:00Z",
        steps: ["wipe": "done", "partition": "started"], completedAt: nil)

    static let cases: [Case] = [
        Case(name: "blank disk is chosen", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda"}]}"#, system: "sda"),
        Case(name: "boot media never", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"isBootMedia":true,"serial":"SN-sda"}]}"#, system: nil,
             rejected: ["sda": "is boot media"]),
        Case(name: "read-only never", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"readOnly":true,"serial":"SN-sda"}]}"#, system: nil,
             rejected: ["sda": "is read-only"]),
        Case(name: "mounted never", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"mounted":true,"mountpoints":["/srv"],"serial":"SN-sda"}]}"#,
             system: nil, rejected: ["sda": "is mounted (/srv)"]),
        Case(name: "held by device-mapper never", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"holders":["dm-0"],"serial":"SN-sda"}]}"#, system: nil,
             rejected: ["sda": "is held by dm-0"]),
        Case(name: "CD-ROM never", disks: "",
             inventory: #"{"disks":[{"name":"sr0","sizeBytes":480103981056,"isCdrom":true,"serial":"SN-sr0"}]}"#, system: nil,
             rejected: ["sr0": "is a CD-ROM"]),
        Case(name: "below default min_size 10 GiB", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":10737418239,"serial":"SN-sda"},{"name":"sdb","sizeBytes":10737418240,"serial":"SN-sdb"}]}"#,
             system: "sdb", storage: ["sda"]),  // below the system disk's minimum, still fine for storage
        Case(name: "explicit min_size", disks: "  system:\n    match: {min_size: 100GB}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":80000000000,"serial":"SN-sda"},{"name":"sdb","sizeBytes":120000000000,"serial":"SN-sdb"}]}"#,
             system: "sdb", storage: ["sda"]),
        Case(name: "removable refused by default", disks: "",
             inventory: #"{"disks":[{"name":"sdc","sizeBytes":64000000000,"removable":true,"transport":"usb","serial":"SN-sdc"}]}"#,
             system: nil, rejected: ["sdc": "is removable"]),
        Case(name: "removable allowed by transport usb", disks: "  system:\n    match: {transport: [usb]}\n",
             inventory: #"{"disks":[{"name":"sdc","sizeBytes":64000000000,"removable":true,"transport":"usb","serial":"SN-sdc"},{"name":"sda","sizeBytes":64000000000,"transport":"sata","serial":"SN-sda"}]}"#,
             system: "sdc", storage: ["sda"]),
        Case(name: "removable allowed when serial names it", disks: "  system:\n    match: {serial: USB123}\n",
             inventory: #"{"disks":[{"name":"sdc","sizeBytes":64000000000,"removable":true,"transport":"usb","serial":"USB123"}]}"#,
             system: "sdc"),
        Case(name: "wipe never refuses data", disks: "",
             inventory: #"{"disks":[{"name":"sdb","sizeBytes":480103981056,"signatures":[{"type":"xfs","usage":"filesystem","label":"data","offsetBytes":0}],"serial":"SN-sdb"}]}"#,
             system: nil, rejected: ["sdb": "holds xfs 'data' (disks.system.wipe is never)"]),
        Case(name: "wipe never refuses a partition table", disks: "",
             inventory: #"{"disks":[{"name":"sdb","sizeBytes":480103981056,"partitionTable":"dos","signatures":[{"type":"dos","usage":"partition_table"}],"partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"fsType":"ext4"}],"serial":"SN-sdb"}]}"#,
             system: nil, rejected: ["sdb": "holds a dos partition table with 1 partition (1 ext4)"]),
        Case(name: "wipe always takes data", disks: "  system:\n    wipe: always\n",
             inventory: #"{"disks":[{"name":"sdb","sizeBytes":480103981056,"signatures":[{"type":"ext4","usage":"filesystem"}],"serial":"SN-sdb"}]}"#,
             system: "sdb"),
        Case(name: "wipe aquarium: another node's layout stays unless the seed names that node", disks: "  system:\n    wipe: aquarium\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"11111111-2222-3333-4444-555555555555","fsType":"xfs"}],"serial":"SN-sda"},{"name":"sdb","sizeBytes":240000000000,"signatures":[{"type":"ext4","usage":"filesystem"}],"serial":"SN-sdb"}]}"#,
             system: nil, rejected: ["sda": "holds the Aquarium state of another node (node \(otherNode))", "sdb": "disks.system.wipe is aquarium"]),
        Case(name: "host.reinstall names that node: wipe aquarium replaces its layout", disks: "  system:\n    wipe: aquarium\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"11111111-2222-3333-4444-555555555555","fsType":"xfs"}],"serial":"SN-sda"},{"name":"sdb","sizeBytes":240000000000,"signatures":[{"type":"ext4","usage":"filesystem"}],"serial":"SN-sdb"}]}"#,
             system: "sda", rejected: ["sdb": "disks.system.wipe is aquarium"], host: "  reinstall: \(otherNode)\n"),
        Case(name: "host.reinstall naming a different node does not", disks: "  system:\n    wipe: always\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"11111111-2222-3333-4444-555555555555","fsType":"xfs"}],"serial":"SN-sda"},{"name":"sdb","sizeBytes":240000000000,"signatures":[{"type":"ext4","usage":"filesystem"}],"serial":"SN-sdb"}]}"#,
             system: "sdb", rejected: ["sda": "another node"], host: "  reinstall: 0f8e2c1a-5b7d-4e09-9a3c-2d6f1e8b7c40\n"),
        Case(name: "a seed bound to this machine replaces another node's layout here", disks: "  system:\n    wipe: aquarium\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"11111111-2222-3333-4444-555555555555","fsType":"xfs"}],"serial":"SN-sda"},{"name":"sdb","sizeBytes":240000000000,"signatures":[{"type":"ext4","usage":"filesystem"}],"serial":"SN-sdb"}]}"#,
             system: "sda", rejected: ["sdb": "disks.system.wipe is aquarium"], options: PlannerOptions(seedBoundToMachine: true)),
        Case(name: "wipe never: another node's layout refused", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"11111111-2222-3333-4444-555555555555"}],"serial":"SN-sda"}]}"#,
             system: nil, rejected: ["sda": "holds the Aquarium state of another node"]),
        Case(name: "this node's layout is mounted only, even with wipe never and a smaller blank disk", disks: "",
             inventory: #"{"disks":[{"name":"sdb","sizeBytes":240000000000,"serial":"SN-sdb"},{"name":"sda","sizeBytes":480103981056,"partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"\#(stateUUID)","fsType":"xfs"}],"serial":"SN-sda"}]}"#,
             system: "sda", storage: ["sdb"], mode: .reuse),
        Case(name: "this node's layout mounted at its own mount points is still reused", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"mounted":true,"mountpoints":["/var/lib/aquarium-system","/var/log"],"partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"\#(stateUUID)"}],"serial":"SN-sda"}]}"#,
             system: "sda", mode: .reuse, options: PlannerOptions(ownMountpoints: PlannerOptions.ownMountpoints(root: "/"))),
        Case(name: "two disks with this node's layout: refuse", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"A","partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"\#(stateUUID)"}]},{"name":"sdb","sizeBytes":480103981056,"serial":"B","partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"\#(stateUUID)"}]}]}"#,
             system: nil, refusal: "2 disks carry this node's Aquarium layout", mode: nil),
        Case(name: "interrupted journal resumes on a disk that now holds a partial GPT", disks: "",
             inventory: #"{"disks":[{"name":"sdb","sizeBytes":240000000000,"serial":"SN-sdb"},{"name":"sda","sizeBytes":480103981056,"partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"name":"aquarium-state","typeGuid":"0fc63daf-8483-4772-8e79-3d69d8477de4"}],"serial":"SN-sda"}]}"#,
             system: "sda", storage: ["sdb"], mode: .resume, options: PlannerOptions(journals: ["/dev/sda": partialJournal])),
        Case(name: "a stale journal does not resume a disk reused by hand (case 1): its ext4 is content under wipe never", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda","partitionTable":"gpt","signatures":[{"type":"gpt","usage":"partition_table"}],"partitions":[{"number":1,"startBytes":1048576,"sizeBytes":1000000,"typeGuid":"0fc63daf-8483-4772-8e79-3d69d8477de4","uuid":"77777777-2222-3333-4444-555555555555","fsType":"ext4","fsLabel":"precious"}]}]}"#,
             system: nil, rejected: ["sda": "disks.system.wipe is never"], refusal: "no disk is eligible", mode: nil,
             options: PlannerOptions(journals: ["/dev/sda": partialJournal])),
        Case(name: "a journal of this node on a blank disk resumes", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda"}]}"#,
             system: "sda", mode: .resume, options: PlannerOptions(journals: ["/dev/sda": partialJournal])),
        Case(name: "unrecognised bytes (plain dm-crypt, a wiped header) are not empty under wipe never", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda","unrecognisedData":true}]}"#,
             system: nil, rejected: ["sda": "data libblkid does not recognise"], mode: nil),
        Case(name: "unrecognised bytes are taken under wipe always", disks: "  system:\n    wipe: always\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda","unrecognisedData":true}]}"#,
             system: "sda"),
        Case(name: "storage wipe aquarium does not take an LVM member (one policy with the Provisioner)", disks: "  storage:\n    wipe: aquarium\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"serial":"A"},{"name":"sdb","sizeBytes":4000000000000,"serial":"B","signatures":[{"type":"LVM2_member","usage":"raid"}]}]}"#,
             system: "sda", storage: [], rejected: ["sdb": "disks.storage.wipe is aquarium"]),
        Case(name: "a disk without a stable identity is not a storage disk", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"serial":"A"},{"name":"sdb","sizeBytes":4000000000000}]}"#,
             system: "sda", storage: [], rejected: ["sdb": "no stable identity"]),
        Case(name: "by_id names exactly one disk", disks: "  system:\n    match: {by_id: /dev/disk/by-id/ata-B}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":240000000000,"byId":["/dev/disk/by-id/ata-A"]},{"name":"sdb","sizeBytes":480000000000,"byId":["/dev/disk/by-id/ata-B"]}]}"#,
             system: "sdb", storage: ["sda"]),
        Case(name: "by_id names no disk: refuse", disks: "  system:\n    match: {by_id: /dev/disk/by-id/ata-C}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":240000000000,"byId":["/dev/disk/by-id/ata-A"]}]}"#,
             system: nil, rejected: ["sda": "is not disks.system.match.by_id /dev/disk/by-id/ata-C"], refusal: "no disk has by_id /dev/disk/by-id/ata-C", mode: nil),
        Case(name: "exact serial matching two disks: refuse", disks: "  system:\n    match: {serial: SAME}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":240000000000,"serial":"SAME"},{"name":"sdb","sizeBytes":240000000000,"serial":"SAME"}]}"#,
             system: nil, refusal: "2 disks have serial SAME", mode: nil),
        Case(name: "the named disk holds data: refuse, never fall back to another", disks: "  system:\n    match: {wwn: \"0x5000c500a1b2c3d4\"}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":240000000000,"wwn":"0x5000c500a1b2c3d4","signatures":[{"type":"xfs","usage":"filesystem","label":"data"}]},{"name":"sdb","sizeBytes":240000000000,"serial":"SN-sdb"}]}"#,
             system: nil, refusal: "cannot be used: holds xfs 'data'", mode: nil),
        Case(name: "serial glob is not a unique identity", disks: "  system:\n    match: {serial: 'S4*'}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":500000000000,"serial":"S4A"},{"name":"sdb","sizeBytes":250000000000,"serial":"S4B"},{"name":"sdc","sizeBytes":100000000000,"serial":"X1"}]}"#,
             system: "sdb", storage: ["sda", "sdc"]),
        Case(name: "smallest SSD before a smaller HDD", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":120000000000,"rotational":true,"serial":"SN-sda"},{"name":"sdb","sizeBytes":960000000000,"rotational":false,"serial":"SN-sdb"},{"name":"sdc","sizeBytes":480000000000,"rotational":false,"serial":"SN-sdc"}]}"#,
             system: "sdc", storage: ["sda", "sdb"]),
        Case(name: "only HDDs: the smallest HDD", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":4000000000000,"rotational":true,"serial":"SN-sda"},{"name":"sdb","sizeBytes":2000000000000,"rotational":true,"serial":"SN-sdb"}]}"#,
             system: "sdb", storage: ["sda"]),
        Case(name: "rotational given: size alone decides", disks: "  system:\n    match: {rotational: true}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":4000000000000,"rotational":true,"serial":"SN-sda"},{"name":"sdb","sizeBytes":2000000000000,"rotational":true,"serial":"SN-sdb"},{"name":"nvme0n1","sizeBytes":500000000000,"serial":"SN-nvme0n1"}]}"#,
             system: "sdb", storage: ["nvme0n1", "sda"], rejected: [:]),
        Case(name: "prefer largest", disks: "  system:\n    prefer: largest\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":120000000000,"serial":"SN-sda"},{"name":"sdb","sizeBytes":960000000000,"serial":"SN-sdb"}]}"#,
             system: "sdb", storage: ["sda"]),
        Case(name: "tie broken by WWN, not by kernel name", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"wwn":"0x5000000000000002","serial":"A"},{"name":"sdb","sizeBytes":480000000000,"wwn":"0x5000000000000001","serial":"Z"}]}"#,
             system: "sdb", storage: ["sda"]),
        Case(name: "tie broken by serial when no WWN", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"serial":"S2"},{"name":"sdb","sizeBytes":480000000000,"serial":"S1"}]}"#,
             system: "sdb", storage: ["sda"]),
        Case(name: "tie broken by by-id link when no WWN or serial", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"byId":["/dev/disk/by-id/virtio-b"]},{"name":"sdb","sizeBytes":480000000000,"byId":["/dev/disk/by-id/virtio-a"]}]}"#,
             system: "sdb", storage: ["sda"]),
        Case(name: "tie with no stable identity at all: refuse", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000},{"name":"sdb","sizeBytes":480000000000}]}"#,
             system: nil, refusal: "no stable identity", mode: nil),
        Case(name: "model glob and transport", disks: "  system:\n    match: {model: 'Samsung*', transport: [nvme]}\n",
             inventory: #"{"disks":[{"name":"nvme0n1","sizeBytes":500000000000,"model":"Samsung SSD 980","transport":"nvme","serial":"SN-nvme0n1"},{"name":"nvme1n1","sizeBytes":250000000000,"model":"WDC SN570","transport":"nvme","serial":"SN-nvme1n1"}]}"#,
             system: "nvme0n1", storage: ["nvme1n1"]),
        Case(name: "storage: own wipe rule and match", disks: "  storage:\n    match: {rotational: true}\n    wipe: always\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"serial":"SN-sda"},{"name":"sdb","sizeBytes":4000000000000,"rotational":true,"signatures":[{"type":"xfs","usage":"filesystem"}],"serial":"SN-sdb"},{"name":"sdc","sizeBytes":960000000000,"serial":"SN-sdc"}]}"#,
             system: "sda", storage: ["sdb"], rejected: ["sdc": "not a storage disk: is an SSD"]),
        Case(name: "storage wipe aquarium reuses an old OSD, not other data", disks: "  storage:\n    wipe: aquarium\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"serial":"SN-sda"},{"name":"sdb","sizeBytes":4000000000000,"signatures":[{"type":"ceph_bluestore","usage":"other"}],"serial":"SN-sdb"},{"name":"sdc","sizeBytes":4000000000000,"signatures":[{"type":"ext4","usage":"filesystem"}],"serial":"SN-sdc"}]}"#,
             system: "sda", storage: ["sdb"], rejected: ["sdc": "disks.storage.wipe is aquarium"]),
        Case(name: "a later boot: this node's OSD disks (in its previous record) stay storage disks under wipe: never",
             disks: "  storage:\n    match: {rotational: true}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"serial":"SN-sda"},{"name":"sdb","sizeBytes":4000000000000,"rotational":true,"serial":"OSD-1","signatures":[{"type":"ceph_bluestore","usage":"other"}]},{"name":"sdc","sizeBytes":4000000000000,"rotational":true,"serial":"FOREIGN","signatures":[{"type":"ceph_bluestore","usage":"other"}]},{"name":"sdd","sizeBytes":4000000000000,"rotational":true,"serial":"OSD-2","signatures":[{"type":"ceph_bluestore","usage":"other"},{"type":"xfs","usage":"filesystem"}]}]}"#,
             system: "sda", storage: ["sdb"],
             rejected: ["sdc": "disks.storage.wipe is never", "sdd": "disks.storage.wipe is never"],
             options: PlannerOptions(knownStorageDisks: ["serial:OSD-1", "serial:OSD-2"])),
        Case(name: "a known storage disk must still match disks.storage.match",
             disks: "  storage:\n    match: {rotational: true}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"serial":"SN-sda"},{"name":"sdb","sizeBytes":4000000000000,"serial":"OSD-1","signatures":[{"type":"ceph_bluestore","usage":"other"}]}]}"#,
             system: "sda", storage: [], rejected: ["sdb": "is an SSD"],
             options: PlannerOptions(knownStorageDisks: ["serial:OSD-1"])),
        Case(name: "min_size rejects a small disk for the system disk", disks: "  system:\n    match: {min_size: 100GB}\n  storage:\n    match: {min_size: 100GB}\n",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":80000000000,"serial":"SN-sda"},{"name":"sdb","sizeBytes":120000000000,"serial":"SN-sdb"}]}"#,
             system: "sdb", rejected: ["sda": "is smaller than disks.system.match.min_size (80 GB < 100 GB)"]),
        Case(name: "nothing eligible: every disk explained", disks: "",
             inventory: #"{"disks":[{"name":"sda","sizeBytes":480000000000,"isBootMedia":true,"mounted":true,"mountpoints":["/"],"serial":"SN-sda"},{"name":"sdb","sizeBytes":1000000000,"serial":"SN-sdb"},{"name":"sdc","sizeBytes":480000000000,"signatures":[{"type":"LVM2_member","usage":"raid"}],"serial":"SN-sdc"}]}"#,
             system: nil, rejected: ["sda": "is boot media", "sdb": "smaller than", "sdc": "holds LVM2_member"],
             refusal: "no disk is eligible", mode: nil),
    ]

    @Test("selection rules", arguments: cases)
    func rule(_ test: Case) throws {
        let plan = SystemDiskPlanner.plan(seed: try Self.seed(test.disks, host: test.host), inventory: try Self.inventory(test.inventory),
                                          options: test.options)
        #expect(plan.systemDisk?.name == test.system, "\(SystemDiskPlanner.render(plan))")
        #expect(plan.storageDisks.map(\.name).sorted() == test.storage.sorted(), "\(SystemDiskPlanner.render(plan))")
        if test.system != nil { #expect(plan.systemDisk?.mode == test.mode) }
        for (name, text) in test.rejected {
            let reasons = plan.rejected.first { $0.name == name }?.reasons.joined(separator: "; ") ?? "<not rejected>"
            #expect(reasons.contains(text), "\(name): \(reasons)")
        }
        if let refusal = test.refusal { #expect(plan.refusal?.contains(refusal) == true, "\(plan.refusal ?? "nil")") }
        // Every disk is accounted for exactly once.
        let all = [plan.systemDisk?.name].compactMap { $0 } + plan.storageDisks.map(\.name) + plan.rejected.map(\.name)
        #expect(all.sorted() == (try Self.inventory(test.inventory)).disks.map(\.name).sorted())
        // Refused plans explain every rejected disk and do nothing.
        if plan.systemDisk == nil {
            #expect(plan.actions.isEmpty)
            #expect(plan.rejected.allSatisfy { !$0.reasons.isEmpty })
        }
    }

    @Test("determinism: shuffled inventories and renamed kernel names give the same choice", arguments: cases)
    func determinism(_ test: Case) throws {
        let seed = try Self.seed(test.disks, host: test.host)
        let inventory = try Self.inventory(test.inventory)
        let reference = SystemDiskPlanner.plan(seed: seed, inventory: inventory, options: test.options)
        var generator = SeededGenerator(seed: UInt64(test.name.utf8.count))
        for _ in 0..<8 {
            let shuffled = Inventory(disks: inventory.disks.shuffled(using: &generator))
            let plan = SystemDiskPlanner.plan(seed: seed, inventory: shuffled, options: test.options)
            #expect(plan == reference)
        }
        // Renamed: every disk gets another kernel name (and path), as after a reboot that enumerated the controllers
        // in another order. The same disks must be chosen, stored and rejected, mapped back to their old names.
        for round in 0..<8 {
            let (renamed, options, oldName) = Self.rename(inventory, test.options, using: &generator)
            let plan = SystemDiskPlanner.plan(seed: seed, inventory: renamed, options: options)
            let context = "round \(round): \(oldName)"
            #expect(plan.systemDisk.flatMap { oldName[$0.name] } == reference.systemDisk.map(\.name), "\(context)")
            #expect(plan.systemDisk?.mode == reference.systemDisk?.mode, "\(context)")
            #expect(plan.storageDisks.map { oldName[$0.name] ?? "?" }.sorted() == reference.storageDisks.map(\.name).sorted(), "\(context)")
            #expect(Set(plan.rejected.map { oldName[$0.name] ?? "?" }) == Set(reference.rejected.map(\.name)), "\(context)")
            #expect((plan.refusal == nil) == (reference.refusal == nil), "\(context): \(plan.refusal ?? "-")")
        }
    }

    /// The inventory with its kernel names replaced by a random permutation of new ones (vdX: none of them an old
    /// name), paths and partition paths to match, and the options' device paths renamed alike. Returns the
    /// new-name -> old-name map too.
    static func rename(_ inventory: Inventory, _ options: PlannerOptions, using generator: inout SeededGenerator)
        -> (Inventory, PlannerOptions, [String: String]) {
        let letters = "abcdefghijklmnopqrstuvwxyz".map { "vd" + String($0) }
        let fresh = Array(letters.prefix(inventory.disks.count)).shuffled(using: &generator)
        var oldName: [String: String] = [:]
        var newPath: [String: String] = [:]
        var disks: [Disk] = []
        for (disk, name) in zip(inventory.disks, fresh) {
            var copy = disk
            oldName[name] = disk.name
            newPath[disk.path] = "/dev/" + name
            copy.name = name
            copy.path = "/dev/" + name
            for index in copy.partitions.indices {
                if let path = copy.partitions[index].path, path.hasPrefix(disk.path) {
                    copy.partitions[index].path = "/dev/" + name + path.dropFirst(disk.path.count)
                }
            }
            disks.append(copy)
        }
        var renamedOptions = options
        renamedOptions.journals = Dictionary(uniqueKeysWithValues: options.journals.map { (newPath[$0.key] ?? $0.key, $0.value) })
        return (Inventory(disks: disks), renamedOptions, oldName)
    }

    @Test("kernel names never decide: swapping them swaps nothing but the names")
    func kernelNamesDoNotDecide() throws {
        let seed = try Self.seed("")
        let a = try Self.inventory(#"{"disks":[{"name":"sda","sizeBytes":480000000000,"serial":"B"},{"name":"sdb","sizeBytes":480000000000,"serial":"A"}]}"#)
        let b = try Self.inventory(#"{"disks":[{"name":"sdb","sizeBytes":480000000000,"serial":"B"},{"name":"sda","sizeBytes":480000000000,"serial":"A"}]}"#)
        #expect(SystemDiskPlanner.plan(seed: seed, inventory: a).systemDisk?.serial == "A")
        #expect(SystemDiskPlanner.plan(seed: seed, inventory: b).systemDisk?.serial == "A")
    }

    @Test("human plan reads like the issue's example")
    func humanOutput() throws {
        let seed = try Self.seed("")
        let inventory = try Self.inventory(#"""
            {"disks":[{"name":"sda","sizeBytes":480103981056,"wwn":"0x5000c500a1b2c3d4","byId":["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4","/dev/disk/by-id/ata-Samsung_SSD"],"vendor":"Samsung","model":"SSD 860","transport":"sata"},
                      {"name":"sdb","sizeBytes":4000000000000,"rotational":true,"signatures":[{"type":"xfs","usage":"filesystem","label":"data"}]}]}
            """#)
        let text = SystemDiskPlanner.render(SystemDiskPlanner.plan(seed: seed, inventory: inventory))
        #expect(text.contains("system disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4 (480 GB SSD, Samsung SSD 860) — will create GPT with partition 'aquarium-state' (xfs)"))
        #expect(text.contains("rejected /dev/sdb: holds xfs 'data' (disks.system.wipe is never)"))
    }

    /// A 2-thread, 1.9 GiB machine with an SSD and two HDDs (as the end-to-end QEMU nodes are).
    static let machineInventory = #"""
        {"machine": {"cpuThreads": 2, "memoryBytes": 2040000000},
         "disks": [{"name": "sda", "sizeBytes": 240000000000, "serial": "S-1", "model": "Samsung SSD 870 QVO 1TB", "firmware": "SVQ01B6Q"},
                   {"name": "sdb", "sizeBytes": 4000000000000, "serial": "H-1", "rotational": true, "vendor": "ATA", "model": "ST4000NM0035"},
                   {"name": "sdc", "sizeBytes": 4000000000000, "serial": "H-2", "rotational": true, "vendor": "ATA", "model": "WDC WD40EFRX", "firmware": "82.00A82"}]}
        """#

    @Test("hardware requirements: what the machine has against the seed's (or Aquarium's) minimums, before anything is touched",
          arguments: [
            // host.requirements, the system disk chosen, the refusal's text (nil: planned), each check's line.
            ("  requirements: {}\n", "sda", nil, ["cpu_threads: needs 2 CPU threads, has 2", "memory: needs 1536MiB (1GiB + 2 OSDs × 256MiB), has 1.9 GiB",
                              "storage_disks: needs 1 storage disk (a bootstrap node's cluster needs an OSD), has 2"]),
            ("  requirements: {cpu_threads: 4}\n", "sda",
             "the machine does not meet the hardware requirements (host.requirements): cpu_threads: needs 4 CPU threads, has 2", []),
            ("  requirements: {memory_per_osd: 4GiB}\n", "sda",
             "memory: needs 9GiB (1GiB + 2 OSDs × 4GiB), has 1.9 GiB", []),
            ("  requirements: {storage_disks: 3}\n", "sda", "storage_disks: needs 3 storage disks, has 2", []),
            ("  requirements: {storage_disks: 0}\n", "sda", nil, []),
          ] as [(String, String, String?, [String])])
    func requirements(host: String, system: String, refusal: String?, checks: [String]) throws {
        let seed = try Self.seed("", host: host)
        let plan = SystemDiskPlanner.plan(seed: seed, inventory: try Self.inventory(Self.machineInventory))
        #expect(plan.systemDisk?.name == system)
        if let refusal {
            #expect(plan.isRefused && plan.actions.isEmpty && plan.refusal?.contains(refusal) == true, "\(plan.refusal ?? "none")")
            #expect(SystemDiskPlanner.render(plan).contains("refused: "), "\(SystemDiskPlanner.render(plan))")
        } else {
            #expect(!plan.isRefused && !plan.actions.isEmpty, "\(plan.refusal ?? "")")
        }
        for check in checks {
            #expect(plan.requirements.contains { $0.met && $0.description == check }, "\(plan.requirements.map(\.description))")
        }
    }

    @Test("requirements are not checked against an inventory without its machine; a node already installed is not refused")
    func requirementsWithoutMachineOrInstalled() throws {
        let seed = try Self.seed("", host: "  requirements: {cpu_threads: 64, storage_disks: 0}\n")
        let noMachine = SystemDiskPlanner.plan(seed: seed, inventory: try Self.inventory(#"{"disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda"}]}"#))
        #expect(!noMachine.isRefused && noMachine.requirements.isEmpty)
        // sda carries this node's layout: the node keeps booting; the plan shows what is short.
        let installed = #"{"machine": {"cpuThreads": 2, "memoryBytes": 2040000000}, "disks":[{"name":"sda","sizeBytes":480103981056,"serial":"SN-sda","partitionTable":"gpt","partitions":[{"number":1,"startBytes":1048576,"sizeBytes":480000000000,"name":"aquarium-state","typeGuid":"4d21b016-b534-45c2-a9fb-5c16e091fd2d","uuid":"\#(Self.stateUUID)","fsType":"xfs"}]}]}"#
        let plan = SystemDiskPlanner.plan(seed: seed, inventory: try Self.inventory(installed))
        #expect(plan.systemDisk?.mode == .reuse && !plan.isRefused, "\(plan.refusal ?? "")")
        #expect(plan.requirements.contains { !$0.met && $0.requirement == "cpu_threads" })
    }

    @Test("disk models: a denied model is never used, with its reason; an allow list keeps out every other model", arguments: [
        ("  models:\n    deny:\n      - {model: \"Samsung SSD 870 QVO*\", reason: \"QLC: slow under sustained writes\"}\n",
         "sdb" as String?, ["sdc"], "sda",
         "its model is denied by disks.models.deny[0] (model Samsung SSD 870 QVO*): QLC: slow under sustained writes"),
        ("  models:\n    deny:\n      - {vendor: ATA, model: \"WDC*\", firmware: \"82.00A8*\", reason: \"firmware 82.00A82 loses the cache on power loss\"}\n",
         "sda", ["sdb"], "sdc",
         "its model is denied by disks.models.deny[0] (vendor ATA, model WDC*, firmware 82.00A8*): firmware 82.00A82 loses the cache on power loss"),
        ("  models:\n    deny:\n      - {firmware: \"OTHER\", reason: \"another firmware\"}\n", "sda", ["sdb", "sdc"], nil, ""),
        ("  models:\n    allow:\n      - {model: \"Samsung*\"}\n      - {model: \"ST4000*\"}\n",
         "sda", ["sdb"], "sdc", "its model (ATA WDC WD40EFRX firmware 82.00A82) is not in disks.models.allow"),
    ] as [(String, String?, [String], String?, String)])
    func diskModels(disks: String, system: String?, storage: [String], rejected: String?, reason: String) throws {
        let seed = try Self.seed(disks, host: "  requirements: {storage_disks: 1}\n")
        let plan = SystemDiskPlanner.plan(seed: seed, inventory: try Self.inventory(Self.machineInventory))
        #expect(plan.systemDisk?.name == system, "\(SystemDiskPlanner.render(plan))")
        #expect(plan.storageDisks.map(\.name) == storage, "\(SystemDiskPlanner.render(plan))")
        if let rejected {
            let reasons = plan.rejected.first { $0.name == rejected }?.reasons.joined(separator: "; ") ?? ""
            #expect(reasons.contains(reason), "\(reasons)")
        }
    }

    @Test("MemTotal from /proc/meminfo", arguments: [
        ("MemTotal:       24576000 kB\nMemFree:  1 kB\n", UInt64(24_576_000) as UInt64?),
        ("MemFree: 1 kB\n", nil), ("MemTotal: many kB\n", nil), ("MemTotal: 5 MB\n", nil),
    ] as [(String, UInt64?)])
    func memTotal(text: String, kib: UInt64?) {
        #expect(MachineResources.memTotalKiB(text) == kib)
    }

    @Test("plan JSON has the documented keys and nulls")
    func json() throws {
        let refused = SystemDiskPlanner.plan(seed: try Self.seed(""), inventory: try Self.inventory(#"{"disks":[{"name":"sda","sizeBytes":1000}]}"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try refused.json().utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["systemDisk", "storageDisks", "rejected", "actions", "refusal", "filesystem", "requirements"])
        #expect(object["systemDisk"] is NSNull)
        let rejected = try #require(object["rejected"] as? [[String: Any]])
        #expect(rejected.first?["path"] as? String == "/dev/sda")
        #expect((rejected.first?["reasons"] as? [String])?.isEmpty == false)
        let chosen = SystemDiskPlanner.plan(seed: try Self.seed(""), inventory: try Self.inventory(#"{"disks":[{"name":"sda","sizeBytes":480000000000}]}"#))
        let system = try #require((try JSONSerialization.jsonObject(with: Data(try chosen.json().utf8)) as? [String: Any])?["systemDisk"] as? [String: Any])
        for key in ["path", "displayPath", "stableIdentity", "byId", "wwn", "serial", "model", "sizeBytes", "rotational", "mode", "reasons", "content"] {
            #expect(system.keys.contains(key), "missing \(key)")
        }
        #expect(system["mode"] as? String == "create")
    }

    @Test("sizes in decimal units", arguments: [
        (UInt64(480_103_981_056), "480 GB"), (UInt64(4_000_000_000_000), "4 TB"), (UInt64(12_884_901_888), "12.9 GB"),
        (UInt64(512), "512 B"),
    ])
    func sizes(_ bytes: UInt64, _ text: String) {
        #expect(SystemDiskPlanner.formatSize(bytes) == text)
    }

    @Test("systemd unit names are escaped like systemd-escape --path", arguments: [
        ("/var/lib/aquarium-system", "var-lib-aquarium\\x2dsystem"), ("/var/log", "var-log"), ("/var/lib/ceph", "var-lib-ceph"),
    ])
    func escape(_ path: String, _ expected: String) {
        #expect(MountUnits.escape(path) == expected)
    }
}

/// A small deterministic generator so shuffles are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        var z = state
        z = (z ^ (z >> 33)) &* 0xff51_afd7_ed55_8ccd
        return z ^ (z >> 33)
    }
}
