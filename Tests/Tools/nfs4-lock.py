#!/usr/bin/env python3
"""An NFSv4.0 client that holds a byte-range lock and reclaims it when its server restarts, as a kernel client does.

The tests' NFS client is libnfs (this machine's kernel has no NFS client), and libnfs does not reclaim its locks after a
server restart. This speaks the protocol itself (RFC 7530, over TCP with ONC RPC and AUTH_SYS):

  nfs4-lock.py hold SERVER /export/file LOG   take a write lock on the whole file (creating it), renew the lease every
                                              10 s; when the server stops answering or forgot this client, connect
                                              again (the same address), reclaim the open and the lock in the server's
                                              grace period, and carry on. Every event is one line in LOG.
  nfs4-lock.py test SERVER /export/file       LOCKT from another client: prints free, denied, grace or the error.

Tests only: nothing here is part of Aquarium.
"""
import os
import socket
import struct
import sys
import time

NFS4_OK, DENIED, EXPIRED, GRACE, STALE_CLIENTID, NO_GRACE, STALE_STATEID = 0, 10010, 10011, 10013, 10022, 10033, 10023
NAMES = {DENIED: "denied", EXPIRED: "expired", GRACE: "grace", STALE_CLIENTID: "stale_clientid", NO_GRACE: "no_grace",
         STALE_STATEID: "stale_stateid", 10008: "delay", 10001: "badhandle", 2: "noent", 13: "access",
         10036: "reclaim_bad", 10034: "reclaim_conflict", 10014: "fhexpired", 10024: "old_stateid", 10026: "bad_seqid"}
OP_GETFH, OP_LOCK, OP_LOCKT, OP_LOOKUP, OP_OPEN, OP_OPEN_CONFIRM, OP_PUTFH, OP_PUTROOTFH, OP_RENEW = 10, 12, 13, 15, 18, 20, 22, 24, 30
OP_SETCLIENTID, OP_SETCLIENTID_CONFIRM = 35, 36
WRITE_LT, ALL = 2, 0xFFFFFFFFFFFFFFFF


class NFSError(Exception):
    def __init__(self, op, status):
        super().__init__(f"op {op}: {NAMES.get(status, status)}")
        self.op, self.status = op, status


class Encoder:
    def __init__(self):
        self.parts = []

    def u32(self, value):
        self.parts.append(struct.pack(">I", value))
        return self

    def u64(self, value):
        self.parts.append(struct.pack(">Q", value))
        return self

    def fixed(self, data):
        self.parts.append(data + b"\0" * (-len(data) % 4))
        return self

    def opaque(self, data):
        return self.u32(len(data)).fixed(data)

    def bytes(self):
        return b"".join(self.parts)


class Decoder:
    def __init__(self, data):
        self.data, self.at = data, 0
        self.values = []

    def u32(self):
        value, = struct.unpack_from(">I", self.data, self.at)
        self.at += 4
        return value

    def u64(self):
        value, = struct.unpack_from(">Q", self.data, self.at)
        self.at += 8
        return value

    def fixed(self, length):
        value = self.data[self.at:self.at + length]
        self.at += length + (-length % 4)
        return value

    def opaque(self):
        return self.fixed(self.u32())

    def stateid(self):
        return self.fixed(16)


class Connection:
    """One TCP connection to the server's port 2049; each call is one COMPOUND."""

    def __init__(self, server):
        self.sock = socket.create_connection((server, 2049), timeout=15)
        self.xid = int.from_bytes(os.urandom(4), "big")

    def close(self):
        self.sock.close()

    def compound(self, ops):
        """ops: [(opcode, encoded arguments)]. Returns a Decoder positioned at the first result; raises NFSError on
        the first operation that failed (after decoding nothing more)."""
        self.xid = (self.xid + 1) & 0xFFFFFFFF
        cred = Encoder().u32(0).opaque(b"aquarium-test").u32(0).u32(0).u32(0).bytes()
        call = Encoder().u32(self.xid).u32(0).u32(2).u32(100003).u32(4).u32(1)
        call.u32(1).opaque(cred).u32(0).opaque(b"")
        call.opaque(b"").u32(0).u32(len(ops))
        for op, args in ops:
            call.u32(op)
            call.parts.append(args)
        body = call.bytes()
        self.sock.sendall(struct.pack(">I", 0x80000000 | len(body)) + body)
        reply = b""
        while True:
            header, = struct.unpack(">I", self._read(4))
            reply += self._read(header & 0x7FFFFFFF)
            if header & 0x80000000:
                break
        d = Decoder(reply)
        if d.u32() != self.xid or d.u32() != 1 or d.u32() != 0:
            raise OSError("RPC reply denied or out of order")
        d.u32()
        d.opaque()
        if d.u32() != 0:
            raise OSError("RPC call not accepted")
        d.u32()  # the compound's status: the failing operation's, read below
        d.opaque()
        count = d.u32()
        for _ in range(count):
            op, status = d.u32(), d.u32()
            if status != NFS4_OK:
                raise NFSError(op, status)
            decode_result(op, d)
        return d.values

    def _read(self, length):
        data = b""
        while len(data) < length:
            chunk = self.sock.recv(length - len(data))
            if not chunk:
                raise OSError("the server closed the connection")
            data += chunk
        return data


def decode_result(op, d):
    """Reads one operation's result into d.values (a list, in order)."""
    values = d.values
    if op == OP_SETCLIENTID:
        values.append((d.u64(), d.fixed(8)))
    elif op == OP_GETFH:
        values.append(d.opaque())
    elif op == OP_OPEN:
        stateid = d.stateid()
        d.u32(), d.u64(), d.u64()  # change_info4
        rflags = d.u32()
        for _ in range(d.u32()):
            d.u32()  # attrset
        delegation = d.u32()
        if delegation != 0:
            raise OSError(f"the server gave a delegation ({delegation}); this client does not take any")
        values.append((stateid, rflags))
    elif op in (OP_OPEN_CONFIRM, OP_LOCK):
        values.append(d.stateid())


class Client:
    def __init__(self, server, path, name):
        self.server, self.path, self.name = server, path, name.encode()
        self.verifier = os.urandom(8)
        self.conn = None
        self.open_seqid = 0
        self.lock_seqid = 0

    def connect(self):
        if self.conn:
            self.conn.close()
        self.conn = Connection(self.server)
        cb = Encoder().u32(0x40000000).opaque(b"tcp").opaque(b"0.0.0.0.0.0").u32(1).bytes()
        args = Encoder().fixed(self.verifier).opaque(self.name).bytes() + cb
        self.clientid, confirm = self.conn.compound([(OP_SETCLIENTID, args)])[0]
        self.conn.compound([(OP_SETCLIENTID_CONFIRM, Encoder().u64(self.clientid).fixed(confirm).bytes())])

    def lookup_ops(self, components):
        return [(OP_PUTROOTFH, b"")] + [(OP_LOOKUP, Encoder().opaque(c.encode()).bytes()) for c in components]

    def owner(self, kind):
        return Encoder().u64(self.clientid).opaque(self.name + kind).bytes()

    def open(self, claim_previous):
        components = [c for c in self.path.split("/") if c]
        share = Encoder().u32(self.open_seqid).u32(3).u32(0).bytes() + self.owner(b"-open")
        if claim_previous:
            ops = [(OP_PUTFH, Encoder().opaque(self.fh).bytes()),
                   (OP_OPEN, share + Encoder().u32(0).u32(1).u32(0).bytes())]  # NOCREATE, CLAIM_PREVIOUS (no delegation)
        else:
            how = Encoder().u32(1).u32(0).u32(0).opaque(b"").bytes()  # CREATE UNCHECKED, no attributes
            ops = self.lookup_ops(components[:-1]) + [(OP_OPEN, share + how + Encoder().u32(0).opaque(components[-1].encode()).bytes()),
                                                      (OP_GETFH, b"")]
        values = self.conn.compound(ops)
        self.open_seqid += 1
        (stateid, rflags) = values[0]
        if not claim_previous:
            self.fh = values[1]
        if rflags & 2:  # OPEN4_RESULT_CONFIRM
            stateid = self.conn.compound([(OP_PUTFH, Encoder().opaque(self.fh).bytes()),
                                          (OP_OPEN_CONFIRM, stateid + Encoder().u32(self.open_seqid).bytes())])[0]
            self.open_seqid += 1
        self.open_stateid = stateid

    def lock(self, reclaim):
        self.lock_seqid = 0
        locker = Encoder().u32(1).u32(self.open_seqid).fixed(self.open_stateid).u32(self.lock_seqid).bytes() + self.owner(b"-lock")
        args = Encoder().u32(WRITE_LT).u32(1 if reclaim else 0).u64(0).u64(ALL).bytes() + locker
        self.conn.compound([(OP_PUTFH, Encoder().opaque(self.fh).bytes()), (OP_LOCK, args)])
        self.open_seqid += 1

    def renew(self):
        self.conn.compound([(OP_RENEW, Encoder().u64(self.clientid).bytes())])

    def test(self):
        components = [c for c in self.path.split("/") if c]
        args = Encoder().u32(WRITE_LT).u64(0).u64(ALL).bytes() + self.owner(b"-test")
        self.conn.compound(self.lookup_ops(components) + [(OP_LOCKT, args)])


def hold(server, path, log_path):
    log = open(log_path, "a", buffering=1)

    def say(line):
        log.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    client = Client(server, path, f"aquarium-lock-holder-{os.getpid()}")
    client.connect()
    client.open(claim_previous=False)
    client.lock(reclaim=False)
    say(f"locked {path} on {server} (client id {client.clientid:x})")
    while True:
        time.sleep(10)
        try:
            client.renew()
            continue
        except (OSError, NFSError) as error:
            say(f"lost the server: {error}")
        while True:
            time.sleep(2)
            try:
                client.connect()
                client.open(claim_previous=True)
                client.lock(reclaim=True)
                say(f"reclaimed the lock on {path} (client id {client.clientid:x})")
                break
            except NFSError as error:
                say(f"reclaim: {error}")
                if error.status in (NO_GRACE, 10036, 10034):
                    say("the server refused the reclaim: the lock is lost")
                    sys.exit(1)
            except OSError as error:
                say(f"reclaim: {error}")


def test(server, path):
    client = Client(server, path, f"aquarium-lock-tester-{os.getpid()}")
    try:
        client.connect()
        client.test()
        print("free")
    except NFSError as error:
        print(NAMES.get(error.status, f"error {error.status}"))
    except OSError as error:
        print(f"unreachable: {error}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "hold":
        hold(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "test":
        test(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
