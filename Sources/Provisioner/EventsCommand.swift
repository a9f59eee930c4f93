import ArgumentParser
import CommandSupport
import Foundation
import JSONCoding

extension ClusterEventsReport: CommandOutput {
    public var text: String {
        (source == "local" ? "# the cluster did not answer: this node's own events\n" : "")
            + events.map { $0.line + "\n" }.joined()
    }
}

public struct EventsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "The cluster's event log, the same from every node: runs, joins, hosts down and up, pools grown.",
        discussion: """
            Each node publishes its events to the cluster (the RADOS pool .aquarium) at the end of every run. When \
            the cluster does not answer, this node's own events are shown instead, and the output says so.

            Examples:
              aquarium-provision events             # every node's events, oldest first
              aquarium-provision events --follow    # and new ones as they arrive
              aquarium-provision events --json      # {"source": "cluster", ...}
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    @Flag(name: .long, help: "Print JSON (one document; with --follow, one event per line).")
    public var json = false

    @Flag(name: .long, help: "Keep printing new events as they arrive (every 2 s) until interrupted.")
    public var follow = false

    public init() {}

    public func run() throws {
        let (layout, _, identity) = try rootOptions.provisioned()
        let tools = CephTools(layout: layout, logger: global.logger("aquarium.provision"), client: identity.client(in: layout))
        let log = ClusterEventLog(tools: tools)
        let output = OutputFormatter(json: json)
        var report: ClusterEventsReport
        do {
            report = ClusterEventsReport(source: "cluster", events: try log.read())
        } catch {
            guard !follow else { throw error }
            let local = EventLog(path: layout.eventsFile).read().filter(ClusterEventLog.published)
            report = ClusterEventsReport(source: "local", events: local.map { ClusterEvent(host: identity.daemonId, $0) })
        }
        guard follow else {
            try output.print(report)
            return
        }
        var seen = Set<String>()
        func emit(_ events: [ClusterEvent]) throws {
            var text = ""
            for event in events {
                let key = "\(event.time) \(event.host) \(event.event) \(event.step ?? "") \(event.detail ?? "")"
                guard seen.insert(key).inserted else { continue }
                text += (json ? try JSONCoding.text(event, pretty: false) : event.line) + "\n"
            }
            // Unbuffered, so a pipe sees each event as it arrives.
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        try emit(report.events)
        while true {
            sleep(2)
            if let events = try? log.read() { try emit(events) }
        }
    }
}
