"""cbcluster - what the cluster tier's fault tests share (test/cluster/tNN-*,
run by test/cluster/run with the environment of `test/infra/cluster env`).

On top of test/integration/lib/cbtest.py (Report, Names, Simulator, Daemon,
the read_committed channel-stats reader, Cassandra row counts):
  cluster(...)        test/infra/cluster MEMBER commands
  leader_of(...)      the broker leading a partition (kcat -L -J)
  coordinator_of(...) the broker coordinating a transactional.id
                      (Kafka's TransactionsCommand describe)
  Pipeline            simulator -> chatbattle (every role) on the three
                      brokers (RF 3) and three nodes (NetworkTopologyStrategy
                      dc1: 3, LOCAL_QUORUM), and finish(): stop the chat and
                      check channel-stats exact, Cassandra exactly once,
                      nothing in the DLQ, printing the figures.
The simulator's counts are the ground truth.
"""

import json
import os
import re
import sys
import tempfile
import time

ROOT = os.environ["CB_ROOT"]
sys.path.insert(0, os.path.join(ROOT, "test", "integration", "lib"))
import cbtest  # noqa: E402

CLUSTER = os.path.join(ROOT, "test", "infra", "cluster")
KAFKA = os.environ["CB_CLUSTER_KAFKA"]
CASSANDRA = os.environ["CB_CLUSTER_CASSANDRA"]
CASSANDRA_ONE = "127.0.0.1:%s" % os.environ["CB_CLUSTER_CASSANDRA_PORT"]
REPLICATION = os.environ["CB_CLUSTER_CASSANDRA_REPLICATION"]
PARTITIONS = 3


def cluster(*args, timeout_s=420):
    """test/infra/cluster ARGS...; (status, stdout + stderr).  Prints how
    long it took (the cluster tier's time goes mostly to these)."""
    t0 = time.monotonic()
    rc, out, err = cbtest.run([CLUSTER] + list(args), timeout_s=timeout_s)
    print("# cluster %s: status %d in %.0f s" % (" ".join(args), rc, time.monotonic() - t0))
    return rc, out + err


def leader_of(topic, partition):
    """The broker id leading topic's partition, or None."""
    meta = cbtest.kcat_metadata(topic)
    for p in (meta or {}).get("partitions", []):
        if p.get("partition") == partition and p.get("leader", -1) >= 0:
            return p["leader"]
    return None


def transactional_id(names):
    """The aggregator's transactional.id (docs/scaling.md:
    chatbattle-agg-<instance_id>-<group_id>)."""
    return "chatbattle-agg-%s-%s" % (names.run, names.group)


def describe_transaction(txn_id):
    """{CoordinatorId, TransactionState, ...} of TransactionsCommand
    describe, or {} when the id is unknown (yet)."""
    rc, out, err = cbtest.kafka_tool("org.apache.kafka.tools.TransactionsCommand",
                                     "--bootstrap-server", KAFKA, "describe",
                                     "--transactional-id", txn_id, timeout_s=120)
    lines = [line for line in out.splitlines() if line.strip()]
    if rc != 0 or len(lines) < 2:
        return {}
    head, row = (re.split(r"\t|\s{2,}", line.strip()) for line in lines[:2])
    return dict(zip(head, row))


def coordinator_of(txn_id):
    """The broker id that coordinates txn_id's transactions, or None."""
    d = describe_transaction(txn_id)
    try:
        return int(d["CoordinatorId"])
    except (KeyError, ValueError):
        return None


def in_sync():
    """Every partition of every topic has all its replicas in sync."""
    rc, out, err = cbtest.run(["kcat", "-b", KAFKA, "-L", "-J"], timeout_s=30)
    if rc != 0:
        return False
    meta = json.loads(out)
    return len(meta.get("brokers", [])) == 3 and all(
        p.get("leader", -1) >= 0 and len(p.get("isrs", [])) == len(p.get("replicas", []))
        for t in meta.get("topics", []) for p in t.get("partitions", []))


def stored_rows(keyspace, channels, tries=5):
    """cbtest.cassandra_rows, tried again when a loaded node times out (a
    read timeout says nothing about the rows)."""
    from cassandra import OperationTimedOut, ReadTimeout
    for i in range(tries):
        try:
            return cbtest.cassandra_rows(keyspace, channels, spec=CASSANDRA_ONE)
        except (ReadTimeout, OperationTimedOut):
            if i == tries - 1:
                raise
    return {}, 0


class Pipeline:
    """One test's pipeline on the cluster: its own topics, group and
    keyspace (cbtest.Names), created by init with RF 3 and the
    NetworkTopologyStrategy map."""

    # 25 messages/s per channel (100/s with four channels): enough for a
    # transaction every 100 ms on every partition, little enough that three
    # Cassandra nodes on two shared cores keep up while a broker is down.
    def __init__(self, rep, tag, channels, rate=25):
        self.rep, self.tag, self.channels = rep, tag, channels
        self.names = cbtest.Names(tag)
        self.tmp = tempfile.mkdtemp(prefix="cb-%s-" % tag)
        self.sim = None
        self.daemons = []
        self.port = cbtest.free_port()
        self.rate = rate

    def start(self):
        rep = self.rep
        rc, out = cbtest.chatbattle_init(
            self.names, ["--replication-factor", "3", "--cassandra-replication", REPLICATION],
            kafka=KAFKA, cassandra=CASSANDRA)
        if not rep.check(rc == 0, "chatbattle init with RF 3 and %s" % REPLICATION, out[-2000:]):
            return False
        self.sim = cbtest.Simulator(self.tmp, self.channels, self.rate)
        d = self.daemon(self.names.run, self.port, self.sim.irc_args() + [
            "--channel", ",".join(self.channels)])
        return (rep.check(cbtest.wait_until(lambda: self.sim.joined(self.channels) or not d.alive(),
                                            90) and d.alive(),
                          "chatbattle joins the channels", d.log_text()[-2000:])
                and rep.check(self.flows(500), "chat flows"))

    def daemon(self, instance_id, port, extra):
        """A chatbattle on the three brokers and the three nodes."""
        d = cbtest.Daemon(self.names.args(KAFKA, CASSANDRA) + [
            "--port", str(port), "--instance-id", instance_id,
            "--consistency", "LOCAL_QUORUM"] + extra,
            os.path.join(ROOT, ".cache", "ctest", "%s-%s.log" % (self.tag, instance_id)),
            env={"TWITCH_CHANNEL": "", "TWITCH_OAUTH_TOKEN": ""})
        self.daemons.append(d)
        return d

    def flows(self, n, timeout_s=300):
        """At least n more messages sent by the simulator (it only sends
        what chatbattle reads: back-pressure stops it)."""
        base, t0 = self.sim.sent(), time.monotonic()
        ok = cbtest.wait_until(lambda: self.sim.sent() >= base + n or not self.alive(),
                               timeout_s) and self.alive()
        print("# %d more messages sent in %.0f s" % (self.sim.sent() - base, time.monotonic() - t0))
        return ok

    def counted_at_least(self, n, timeout_s=300):
        """Waits until channel-stats (read_committed) counts n messages."""
        t0 = time.monotonic()
        ok = cbtest.wait_until(lambda: self.counted() >= n or not self.alive(),
                               timeout_s, 0.5) and self.alive()
        print("# %d counted (waited for %d) in %.0f s" % (self.counted(), n, time.monotonic() - t0))
        return ok

    def alive(self):
        """Every chatbattle of this pipeline still runs (one that stopped on
        an error ends the test's waits at once)."""
        return all(d.alive() for d in self.daemons)

    def counted(self):
        """Messages counted so far in channel-stats (read_committed), as the
        first chatbattle's stats cache serves them (its windows API; the
        cache is a read_committed consumer of channel-stats).

        Not kcat: `kcat -e` ends at a partition's end only when a fetch
        finds nothing more, and a pipeline committing a transaction every
        100 ms rarely leaves it that gap - one read of a busy 3-partition
        channel-stats took 22 to 163 s, which made t22 spend minutes in
        these waits.  finish() still reads the topic itself with kcat, once
        the chat has stopped."""
        total = 0
        for ch in self.channels:
            st, body = cbtest.http_json(self.port, "/api/channels/%s/windows?limit=10000" % ch)
            if st != 200 or not body:
                continue
            total += sum(w.get("message_count", 0) for w in body.get("windows", []))
        return total

    def finish(self):
        """Stops the chat and checks the end state against the simulator."""
        rep, names = self.rep, self.names
        if not rep.check(self.alive(), "every chatbattle still runs at the end"):
            return
        self.sim.ctl("pause")
        r = self.sim.ctl("sync", timeout=300)
        rep.check(r.startswith("ok"), "the simulator confirms chatbattle read every line", r)
        truth = self.sim.per_channel()
        sent = sum(truth.values())
        got = cbtest.wait_until(lambda: (lambda g: g if g == truth else None)(
            cbtest.stats_per_channel(names.stats, KAFKA)), 240)
        got = got or cbtest.stats_per_channel(names.stats, KAFKA)
        rows, n = stored_rows(names.keyspace, self.channels)
        per = {}
        for row in rows.values():
            per[row.channel_id] = per.get(row.channel_id, 0) + 1
        dlq, ndlq = cbtest.topic_messages(names.dlq, 1, KAFKA)
        print("# figures: sent by the simulator %d, counted in channel-stats (read_committed) %d, "
              "rows in Cassandra %d (distinct %d), DLQ records %d"
              % (sent, sum(got.values()), n, len(rows), ndlq))
        rep.check(sent > 0, "the simulator sent messages (%d)" % sent)
        rep.equal(got, truth, "channel-stats counts equal what the simulator sent, per channel")
        rep.equal((per, n), (truth, sent), "Cassandra holds every message exactly once")
        rep.equal(ndlq, 0, "nothing in the DLQ")

    def stop(self):
        rep = self.rep
        for d in reversed(self.daemons):
            rc = d.stop()
            rep.check(rc == 0, "chatbattle %s stops cleanly (status %r)"
                      % (os.path.basename(d.log_path), rc))
            if rep.failed:
                rep.diag("log tail:\n" + d.log_text()[-3000:])
        if self.sim is not None:
            self.sim.stop()
        cbtest.delete_topics(self.names, KAFKA)
        cbtest.drop_keyspace(self.names.keyspace, spec=CASSANDRA_ONE)


def restore(rep):
    """Every broker running again (a test that failed halfway leaves none
    down for the next), and every partition in sync."""
    rc, out = cluster("start", "kafka")
    rep.check(rc == 0 and cbtest.wait_until(in_sync, 180),
              "the brokers are whole again, every partition in sync", out[-1500:])
