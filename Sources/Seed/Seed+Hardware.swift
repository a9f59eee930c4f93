import Foundation

// The hardware a seed asks for: what the machine must have (`host.requirements`) and the disk models it must not use
// (`disks.models`). FirstBoot's planner checks both before anything is touched (docs/seed.md, docs/plan.md).

extension Seed {
    /// The hardware a node needs (`host.requirements`), checked by `plan` before anything is touched: CPU threads,
    /// memory for the node itself and for each planned OSD, and storage disks. A seed may raise Aquarium's minimums
    /// (as upstream Aquarium checked them: 2 threads), never lower them. The system disk's size is
    /// `disks.system.match.min_size` (at least 10GiB by default).
    public struct Requirements: Sendable, Equatable, Encodable {
        public static let minimumCPUThreads = 2
        /// The system, a monitor and a manager; measured against `MemTotal`.
        public static let minimumMemory: UInt64 = 1 << 30
        /// Each OSD on top (Ceph's own default target is 4GiB: production seeds raise this).
        public static let minimumMemoryPerOSD: UInt64 = 256 << 20

        public var cpuThreads: Int
        public var memory: UInt64
        public var memoryPerOSD: UInt64
        /// Storage disks the plan must find; nil: 1 on a bootstrap node (its cluster needs an OSD), 0 on the others.
        public var storageDisks: Int?

        public init(cpuThreads: Int = minimumCPUThreads, memory: UInt64 = minimumMemory,
                    memoryPerOSD: UInt64 = minimumMemoryPerOSD, storageDisks: Int? = nil) {
            self.cpuThreads = cpuThreads
            self.memory = memory
            self.memoryPerOSD = memoryPerOSD
            self.storageDisks = storageDisks
        }

        /// The storage disks a node of `role` needs.
        public func storageDisks(for role: ClusterRole) -> Int { storageDisks ?? (role == .bootstrap ? 1 : 0) }
    }

    /// `disks.models`: a disk matched by a `deny` rule is never used (its reason is in the plan); when `allow` has
    /// rules, a disk matched by none of them is not used either.
    public struct DiskModels: Sendable, Equatable, Encodable {
        public var allow: [DiskModelRule]
        public var deny: [DiskModelRule]

        public init(allow: [DiskModelRule] = [], deny: [DiskModelRule] = []) {
            self.allow = allow
            self.deny = deny
        }

        public var isEmpty: Bool { allow.isEmpty && deny.isEmpty }

        /// Why a disk with this vendor, model and firmware must not be used; nil when it may.
        public func refusal(vendor: String?, model: String?, firmware: String?) -> String? {
            if let index = deny.firstIndex(where: { $0.matches(vendor: vendor, model: model, firmware: firmware) }) {
                return "its model is denied by disks.models.deny[\(index)] (\(deny[index].pattern)): \(deny[index].reason ?? "")"
            }
            if !allow.isEmpty, !allow.contains(where: { $0.matches(vendor: vendor, model: model, firmware: firmware) }) {
                let what = [vendor, model, firmware.map { "firmware " + $0 }].compactMap { $0 }.joined(separator: " ")
                return "its model (\(what.isEmpty ? "unknown" : what)) is not in disks.models.allow"
            }
            return nil
        }
    }

    /// Shell globs over a disk's vendor, model and firmware revision (each given one must match, surrounding spaces
    /// ignored), and why.
    public struct DiskModelRule: Sendable, Equatable, Encodable {
        public var vendor: String?
        public var model: String?
        public var firmware: String?
        public var reason: String?

        public init(vendor: String? = nil, model: String? = nil, firmware: String? = nil, reason: String? = nil) {
            self.vendor = vendor
            self.model = model
            self.firmware = firmware
            self.reason = reason
        }

        public func matches(vendor: String?, model: String?, firmware: String?) -> Bool {
            func holds(_ pattern: String?, _ value: String?) -> Bool {
                guard let pattern else { return true }
                guard let value = value?.trimmingCharacters(in: .whitespaces) else { return false }
                return DiskMatch.glob(pattern, matches: value)
            }
            return holds(self.vendor, vendor) && holds(self.model, model) && holds(self.firmware, firmware)
        }

        /// `vendor ATA, model Samsung SSD 870*, firmware SVQ01B6Q` as the rule says it.
        public var pattern: String {
            [vendor.map { "vendor \($0)" }, model.map { "model \($0)" }, firmware.map { "firmware \($0)" }]
                .compactMap { $0 }.joined(separator: ", ")
        }
    }
}
