import ArgumentParser
import CommandSupport

/// `aquarium-provision`: the orchestration runtime FirstBoot hands off to.
/// Its subcommands (run, status, support-bundle, stop) arrive with the Provisioner issue.
public struct ProvisionCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aquarium-provision",
        abstract: "Configure this host from its seed and bootstrap or join the Ceph cluster.",
        version: AquariumVersion.string,
        subcommands: [])

    public init() {}
}
