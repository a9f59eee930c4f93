import ArgumentParser
import CommandSupport

/// `aquarium-provision`: the orchestration runtime FirstBoot hands off to.
public struct ProvisionCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aquarium-provision",
        abstract: "Configure this host from its seed and bootstrap or join the Ceph cluster.",
        discussion: """
            Examples:
              aquarium-provision run                  # FirstBoot's handoff runs it
              aquarium-provision status               # health, daemons, endpoints
              aquarium-provision events --follow      # the cluster's event log
              aquarium-provision maintenance enter node-3   # day two
              aquarium-provision maintenance exit node-3
              aquarium-provision update /var/lib/aquarium/aquarium.raw.zst
              aquarium-provision support-bundle --output support.tar.gz
            """,
        version: AquariumVersion.string,
        subcommands: [RunCommand.self, StatusCommand.self, EventsCommand.self, JoinTokenCommand.self, SupportBundleCommand.self,
                      StopCommand.self, NFSTakeoverCommand.self, NFSReleaseCommand.self, MaintenanceCommand.self, RebootCommand.self, NodeCommand.self,
                      DiskCommand.self, UpdateCommand.self, S3CredentialsCommand.self,
                      DashboardPasswordCommand.self, ISCSICredentialsCommand.self, BenchCommand.self])

    public init() {}
}
