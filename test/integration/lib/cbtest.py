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
# test/infra/cluster in the cluster tier (CB_STACK_SCRIPT): its kafka-tool
# runs the same main classes on the cluster's jars.
STACK = os.environ.get("CB_STACK_SCRIPT") or os.path.join(ROOT, "test", "infra", "stack")

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
        # TimeoutExpired carries bytes even with text=True.
        out = e.stdout or b""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        return 124, out, "timed out after %ss: %s" % (timeout_s, " ".join(cmd))


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


def produce(topic, records, bootstrap=None):
    """Produces (key, value) records with acks=all and the Java-compatible
    partitioner; returns (status, stderr).  Keys and values must not contain
    tabs or newlines."""
    text = "".join("%s\t%s\n" % (k, v) for k, v in records)
    rc, _, err = run(["kcat", "-b", bootstrap or KAFKA, "-P", "-t", topic, "-K", "\t",
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


# --- chatbattle pipelines ----------------------------------------------------

BIN = os.environ.get("CB_BIN") or os.path.join(ROOT, "chatbattle")


class Names:
    """Per-run names, so that tests can share one stack: topics, consumer
    group, keyspace (Cassandra identifiers: lower case, '_')."""

    def __init__(self, tag):
        run_id = "%s%d" % (tag, os.getpid() % 100000)
        self.run = run_id
        self.messages = run_id + "-msgs"
        self.stats = run_id + "-stats"
        self.dlq = run_id + "-dlq"
        self.group = run_id + "-group"
        self.keyspace = run_id.lower().replace("-", "_")

    def args(self, kafka=None, cassandra=None):
        return ["--kafka-brokers", kafka or KAFKA,
                "--cassandra-hosts", cassandra or CASSANDRA,
                "--keyspace", self.keyspace,
                "--topic-messages", self.messages,
                "--topic-stats", self.stats,
                "--topic-dlq", self.dlq,
                "--group-id", self.group]


def free_port():
    """A loopback TCP port nobody listens on right now."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chatbattle_init(names, extra=(), timeout_s=180, kafka=None, cassandra=None):
    """`chatbattle init` for names; returns (status, stdout + stderr)."""
    rc, out, err = run([BIN, "init"] + names.args(kafka, cassandra) + list(extra),
                       timeout_s=timeout_s)
    return rc, out + err


class Daemon:
    """A `chatbattle run` in the background with its log in a file; stop()
    ends it with SIGTERM (or kill() with SIGKILL)."""

    def __init__(self, args, log_path, env=None):
        self.log_path = log_path
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        self.log = open(log_path, "w")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([BIN, "run"] + list(args), stdout=self.log,
                                     stderr=subprocess.STDOUT, env=e)

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, sig=15, timeout_s=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill(self):
        return self.stop(sig=9)


def http_json(port, path, timeout_s=5):
    """GET http://127.0.0.1:port/path; returns (status, parsed JSON or None)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout_s) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read().decode())
        except ValueError:
            return e.code, None
    except (OSError, ValueError):
        return None, None


def metric(port, name):
    """The value of one Prometheus sample from /metrics, or None."""
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            for line in r.read().decode().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == name:
                    return float(parts[1])
    except OSError:
        return None
    return None


def chat_records(n, channels, seed, base_ms=1_700_000_000_000):
    """n ChatMessage records (key, json) over channels, deterministic from
    seed; returns (records, truth) where truth maps message_id to the dict."""
    import uuid
    records, truth = [], {}
    for i in range(n):
        ch = channels[i % len(channels)]
        mid = str(uuid.UUID(int=(seed << 64) | (0x4000 << 48) | i))
        d = {"channel_id": ch, "user_id": str(1000 + i % 37),
             "username": "user%d" % (i % 37),
             "message": "msg %d caf\u00e9 \u2764 Kappa %s" % (i, "x" * (i % 50)),
             "timestamp": base_ms + i * 10, "emotes": ["Kappa"] * (i % 3),
             "message_id": mid, "type": "message", "received_at": base_ms + i * 10}
        records.append((ch, json.dumps(d, ensure_ascii=False)))
        truth[mid] = d
    return records, truth


def cassandra_rows(keyspace, channels, spec=None):
    """Every raw_chat_messages row of channels: {message_id: row dict}, and
    the number of rows read (duplicates would differ)."""
    import cbcql
    cluster, session = cbcql.connect(spec, timeout_s=60)
    rows, n = {}, 0
    try:
        for ch in channels:
            for r in session.execute(
                    "SELECT channel_id, timestamp, message_id, user_id, username, message, "
                    "emotes, TTL(message) AS ttl FROM %s.raw_chat_messages WHERE channel_id = %%s"
                    % keyspace, [ch]):
                n += 1
                rows[str(r.message_id)] = r
    finally:
        cluster.shutdown()
    return rows, n


def drop_keyspace(keyspace, spec=None):
    import cbcql
    try:
        cluster, session = cbcql.connect(spec, timeout_s=30)
        try:
            session.execute("DROP KEYSPACE IF EXISTS %s" % keyspace)
        finally:
            cluster.shutdown()
    except Exception:  # cleanup only
        pass


def delete_topics(names, bootstrap=None):
    kafka_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
               bootstrap or KAFKA, "--delete", "--topic",
               "%s|%s|%s" % (names.messages, names.stats, names.dlq), timeout_s=60)


def read_stats(topic, bootstrap=None):
    """channel-stats read read_committed: {(channel, window_start): count},
    the last record per key and window winning."""
    rc, out, err = run(["kcat", "-b", bootstrap or KAFKA, "-C", "-t", topic, "-e", "-q",
                        "-o", "beginning", "-X", "isolation.level=read_committed",
                        "-f", "%s\n"], timeout_s=120)
    got = {}
    for line in out.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        got[(d["channel_id"], d["window_start"])] = d["message_count"]
    return got


def window_truth(truth, window_ms=600000):
    """{(channel, window_start): count} of chat_records' truth."""
    counts = {}
    for d in truth.values():
        k = (d["channel_id"], d["timestamp"] // window_ms * window_ms)
        counts[k] = counts.get(k, 0) + 1
    return counts


FAULT_STACK = os.path.join(ROOT, "test", "integration", "lib", "fault-stack")
FAULT_KAFKA = "127.0.0.1:19092"
FAULT_CASSANDRA = "127.0.0.1:19042"


def fault_stack(*args, timeout_s=300):
    """Runs lib/fault-stack (the private stack with auth); (status, output)."""
    rc, out, err = run([FAULT_STACK] + list(args), timeout_s=timeout_s)
    return rc, out + err


# --- the simulator -------------------------------------------------------------

class Simulator:
    """`chatbattle simulate` on free ports (TLS, self-signed certificate in
    tmpdir); ctl() speaks its control protocol, stats() parses `stats`."""

    def __init__(self, tmpdir, channels, rate, extra=()):
        import socket  # noqa: F401  (ctl)
        self.proc = subprocess.Popen(
            [BIN, "simulate", "--sim-port=0", "--sim-control-port=0",
             "--sim-cert-file=%s/sim.pem" % tmpdir, "--sim-rate=%d" % rate,
             "--sim-channels=%s" % ",".join(channels), "--log-level=warn"] + list(extra),
            stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.cport = self.info["control_port"]

    def irc_args(self):
        return ["--irc-ca-file", self.info["cert_file"], "--irc-host", "127.0.0.1",
                "--irc-port", str(self.info["irc_port"]),
                "--irc-backoff-min", "50", "--irc-backoff-max", "1000"]

    def ctl(self, cmd, timeout=120):
        import socket
        with socket.create_connection(("127.0.0.1", self.cport), timeout=timeout) as c:
            c.sendall(cmd.encode() + b"\n")
            return c.makefile("r").readline().strip()

    def stats(self):
        try:
            return json.loads(self.ctl("stats"))
        except (OSError, ValueError):
            return None

    def sent(self):
        s = self.stats()
        return s["totals"]["messages"] if s else 0

    def per_channel(self):
        s = self.stats()
        return {c: v["messages"] for c, v in s["channels"].items()}

    def joined(self, channels):
        s = self.stats()
        return bool(s) and all(s["channels"].get(c, {}).get("joined", 0) >= 1 for c in channels)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.ctl("quit", timeout=5)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def topic_messages(topic, partitions, bootstrap=None):
    """The chat messages in a topic (type message or none): {message_id:
    channel_id}, and the number of records read."""
    ids, n = {}, 0
    for p in range(partitions):
        rc, out, err = run(["kcat", "-b", bootstrap or KAFKA, "-C", "-t", topic, "-p", str(p),
                            "-o", "beginning", "-e", "-q", "-f", "%s\n"], timeout_s=120)
        for line in out.splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if d.get("type", "message") == "message" and "message_id" in d:
                n += 1
                ids[d["message_id"]] = d["channel_id"]
    return ids, n


def stats_per_channel(topic, bootstrap=None):
    """channel-stats (read_committed) summed over windows per channel."""
    per = {}
    for (ch, _), n in read_stats(topic, bootstrap).items():
        per[ch] = per.get(ch, 0) + n
    return per
