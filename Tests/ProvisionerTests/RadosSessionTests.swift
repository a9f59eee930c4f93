import Foundation
import Testing
@testable import Provisioner

/// Which `ceph` invocations the run's librados connection answers, and the JSON command it sends for each: the one the
/// `ceph` tool sends (its arguments by name, numbers as numbers). Everything else goes to the tool. The answers
/// themselves are compared with the tool's on a real cluster (ClusterTests).
struct RadosSessionTests {
    static let translated: [(arguments: [String], json: String?)] = [
        (["osd", "dump"], nil),
        (["osd", "dump", "--format", "json"], #"{"format":"json","prefix":"osd dump"}"#),
        (["osd", "pool", "ls", "detail", "--format", "json"], #"{"detail":"detail","format":"json","prefix":"osd pool ls"}"#),
        (["telemetry", "status", "--format", "json"], #"{"format":"json","prefix":"telemetry status"}"#),
        (["config-key", "get", "aquarium/join-key"], #"{"key":"aquarium\/join-key","prefix":"config-key get"}"#),
        (["config-key", "exists", "mgr/dashboard/crt"], #"{"key":"mgr\/dashboard\/crt","prefix":"config-key exists"}"#),
        (["config-key", "set", "aquarium/hosts-down", "{\"a\":1}"],
         #"{"key":"aquarium\/hosts-down","prefix":"config-key set","val":"{\"a\":1}"}"#),
        (["auth", "get", "client.aquarium-join", "--format", "json"],
         #"{"entity":"client.aquarium-join","format":"json","prefix":"auth get"}"#),
        (["auth", "get-or-create", "client.x", "mon", "allow r", "osd", "allow rw", "--format", "json"],
         #"{"caps":["mon","allow r","osd","allow rw"],"entity":"client.x","format":"json","prefix":"auth get-or-create"}"#),
        // A capability without its grant, or an output file: the tool's business.
        (["auth", "get-or-create", "client.x", "mon"], nil),
        (["auth", "get-or-create", "mgr.a", "mon", "allow profile mgr", "-o", "/tmp/keyring"], nil),
        (["config", "set", "global", "osd_pool_default_size", "3"],
         #"{"name":"osd_pool_default_size","prefix":"config set","value":"3","who":"global"}"#),
        (["config", "set", "global", "some_option", "-1"], nil),
        (["osd", "pool", "create", ".aquarium", "8"], #"{"pg_num":8,"pool":".aquarium","prefix":"osd pool create"}"#),
        (["osd", "pool", "create", "rbd"], #"{"pool":"rbd","prefix":"osd pool create"}"#),
        (["osd", "pool", "create", "rbd", "eight"], nil),
        (["osd", "pool", "application", "enable", ".aquarium", "aquarium"],
         #"{"app":"aquarium","pool":".aquarium","prefix":"osd pool application enable"}"#),
        (["osd", "new", "0b4c", "-i", "-"], #"{"prefix":"osd new","uuid":"0b4c"}"#),
        (["osd", "new", "0b4c", "3", "-i", "-"], #"{"id":3,"prefix":"osd new","uuid":"0b4c"}"#),
        (["osd", "new", "0b4c"], nil),
        (["config", "assimilate-conf", "-i", "-"], #"{"prefix":"config assimilate-conf"}"#),
        (["config", "assimilate-conf", "-i", "/tmp/settings.conf", "-o", "/dev/null"], nil),
        (["--connect-timeout", "5", "status", "--format", "json"], nil),
        (["osd", "purge-new", "osd.3", "--yes-i-really-mean-it"], nil),
        (["fs", "subvolume", "info", "cephfs", "shared", "--format", "json"], nil),
    ]

    @Test(arguments: translated.indices)
    func translatesTheToolsArguments(_ index: Int) {
        let (arguments, json) = Self.translated[index]
        #expect(RadosSession.monitorCommand(arguments) == json, "\(arguments)")
    }

    /// What `CephTools.json` asks (its arguments without `--format json`).
    @Test func queriesWithoutArgumentsOnly() {
        #expect(RadosSession.monitorQuery(["health"]) == #"{"format":"json","prefix":"health"}"#)
        #expect(RadosSession.monitorQuery(["osd", "pool", "ls", "detail"]) == #"{"detail":"detail","format":"json","prefix":"osd pool ls"}"#)
        #expect(RadosSession.monitorQuery(["osd", "pool", "application", "get", "rbd"]) == nil)
        #expect(RadosSession.monitorQuery(["fs", "subvolume", "info", "cephfs", "x"]) == nil)
        #expect(RadosSession.managerQueries.contains(["telemetry", "status"]))
    }

    /// Without a configuration file there is nothing to connect with: the caller falls back to the tool.
    @Test func noConnectionWithoutConfiguration() throws {
        let session = RadosSession(cluster: "ceph", configPath: "/nonexistent/ceph.conf", client: nil, logger: .init(label: "test"))
        #expect(session.monitorCommand(#"{"prefix":"health","format":"json"}"#) == nil)
    }
}

extension RadosSessionTests {
    /// The object writes the run gives `rados` (the event log, the node's version), with the session's time limit only.
    @Test func objectWrites() {
        #expect(RadosSession.objectWrite(["--rados_osd_op_timeout", "10", "-p", ".aquarium", "append", "events.node-01", "-"])!
            == (".aquarium", "events.node-01", true))
        #expect(RadosSession.objectWrite(["--rados_osd_op_timeout", "10", "-p", ".aquarium", "put", "node.node-01", "-"])!
            == (".aquarium", "node.node-01", false))
        #expect(RadosSession.objectWrite(["--rados_osd_op_timeout", "30", "-p", ".aquarium", "put", "node.node-01", "-"]) == nil)
        #expect(RadosSession.objectWrite(["-p", ".aquarium", "put", "node.node-01", "-"]) == nil)
        #expect(RadosSession.objectWrite(["--rados_osd_op_timeout", "10", "-p", ".aquarium", "put", "node.node-01", "file"]) == nil)
        #expect(RadosSession.objectWrite(["--rados_osd_op_timeout", "10", "-p", ".aquarium", "get", "node.node-01", "-"]) == nil)
    }
}
