"""cbtest - helpers for chatbattle's Python integration tests
(test/integration/tNN-*, run with /usr/bin/python3 by test/integration/run).

Reporting follows the protocol documented in test/integration/run: one line
per check, "ok - ..." or "not ok - ...", diagnostics as "# ..." lines, and a
non-zero exit status when any check failed (Report.exit()).

Also: the topics/*.conf parser (the same strict format chatbattle's C code
reads), Kafka's murmur2 partitioner, kcat and Kafka-tool wrappers, and a
deadline-bounded wait.  Everything talks to the stack on 127.0.0.1 given by
CB_KAFKA and CB_CASSANDRA.
"""

import json
import os
import re
import subprocess
import sys
import time

ROOT = os.environ.get("CB_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
KAFKA = os.environ.get("CB_KAFKA", "127.0.0.1:%s" % os.environ.get("CB_KAFKA_PORT", "9092"))
CASSANDRA = os.environ.get("CB_CASSANDRA", "127.0.0.1:%s" % os.environ.get("CB_CASSANDRA_PORT", "9042"))
STACK = os.path.join(ROOT, "test", "infra", "stack")

sys.path.insert(0, os.path.join(ROOT, "test", "infra"))


class Report:
    """Prints check results and remembers whether one failed."""

    def __init__(self):
        self.failed = 0
        self.count = 0

    def check(self, cond, desc, *diag):
        self.count += 1
        if cond:
            print("ok - %s" % desc)
        else:
            self.failed += 1
            print("not ok - %s" % desc)
            for d in diag:
                for line in str(d).splitlines() or [""]:
                    print("# %s" % line)
        sys.stdout.flush()
        return bool(cond)

    def equal(self, got, want, desc):
        return self.check(got == want, desc, "got:  %r" % (got,), "want: %r" % (want,))

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# %s" % line)
        sys.stdout.flush()

    def exit(self):
        if self.count == 0:
            print("not ok - the test made no check")
            self.failed = 1
        sys.exit(1 if self.failed else 0)


def wait_until(cond, timeout_s, interval_s=0.2):
    """Polls cond() until it returns a true value or timeout_s passes;
    returns that value (or the last false one)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)


# --- topics/ ---------------------------------------------------------------

_KV = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=\s*(\S(?:.*\S)?)\s*$")


def parse_topic_file(path):
    """Parses one topics/*.conf: returns {"name", "partitions",
    "replication_factor", "config": {k: v}}; raises ValueError on any line
    outside the format ('#' comments, blank lines, 'key = value')."""
    topic = {"config": {}}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if re.match(r"^\s*(#.*)?$", line):
                continue
            m = _KV.match(line)
            if not m:
                raise ValueError("%s:%d: not 'key = value': %r" % (path, n, line))
            key, value = m.group(1), m.group(2)
            if key == "name":
                topic["name"] = value
            elif key in ("partitions", "replication_factor"):
                topic[key] = int(value)
            elif key.startswith("config.") and len(key) > 7:
                topic["config"][key[7:]] = value
            else:
                raise ValueError("%s:%d: unknown key %r" % (path, n, key))
    for key in ("name", "partitions", "replication_factor"):
        if key not in topic:
            raise ValueError("%s: no %s" % (path, key))
    return topic


def topic_files():
    d = os.path.join(ROOT, "topics")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".conf"))


# --- Kafka -----------------------------------------------------------------

def murmur2(data):
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an
    unsigned 32-bit value."""
    m, r = 0x5bd1e995, 24
    h = (0x9747b28c ^ len(data)) & 0xffffffff
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = data[4 * n4:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def java_partition(key, partitions):
    """The partition Java's default partitioner picks for a keyed record:
    toPositive(murmur2(key)) % partitions."""
    return (murmur2(key.encode()) & 0x7fffffff) % partitions


def run(cmd, timeout_s=120, input_text=None):
    """Runs a command; returns (status, stdout, stderr)."""
    try:
        p = subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout_s)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return 124, e.stdout or "", "timed out after %ss: %s" % (timeout_s, " ".join(cmd))


def kcat_metadata(topic):
    """Returns the topic's metadata dict from `kcat -L -J`, or None."""
    rc, out, _ = run(["kcat", "-b", KAFKA, "-L", "-J", "-m", "10", "-t", topic], timeout_s=30)
    if rc != 0:
        return None
    for t in json.loads(out).get("topics", []):
        if t.get("topic") == topic and not t.get("error"):
            return t
    return None


def end_offsets(topic, partitions):
    """{partition: high watermark} through `kcat -Q` (timestamp -1 = end)."""
    cmd = ["kcat", "-b", KAFKA, "-Q"]
    for p in range(partitions):
        cmd += ["-t", "%s:%d:-1" % (topic, p)]
    rc, out, err = run(cmd, timeout_s=30)
    if rc != 0:
        raise RuntimeError("kcat -Q failed: %s" % err.strip())
    offsets = {}
    for line in out.splitlines():
        m = re.match(r"^\S+ \[(\d+)\] offset (-?\d+)$", line.strip())
        if m:
            offsets[int(m.group(1))] = int(m.group(2))
    return offsets


def produce(topic, records):
    """Produces (key, value) records with acks=all and the Java-compatible
    partitioner; returns (status, stderr).  Keys and values must not contain
    tabs or newlines."""
    text = "".join("%s\t%s\n" % (k, v) for k, v in records)
    rc, _, err = run(["kcat", "-b", KAFKA, "-P", "-t", topic, "-K", "\t",
                      "-X", "topic.partitioner=murmur2_random", "-X", "acks=all"],
                     timeout_s=60, input_text=text)
    return rc, err


def consume_from(topic, offsets):
    """Reads every record from the given {partition: offset} to the current
    end; returns a list of kcat's JSON message dicts."""
    got = []
    for p, off in sorted(offsets.items()):
        rc, out, err = run(["kcat", "-b", KAFKA, "-C", "-t", topic, "-p", str(p), "-o", str(off),
                            "-e", "-J", "-q"], timeout_s=60)
        if rc != 0:
            raise RuntimeError("kcat -C %s [%d] failed: %s" % (topic, p, err.strip()))
        got += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return got


def kafka_tool(*args, timeout_s=120):
    """Runs a Kafka admin main class with the stack's jars."""
    return run([STACK, "kafka-tool"] + list(args), timeout_s=timeout_s)
