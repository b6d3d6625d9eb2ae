#!/usr/bin/env bash
# sd_notify.sh - the daemon speaks systemd's notify protocol (src/sd.c,
# src/run.c) the way chatbattle.service (Type=notify, WatchdogSec=) expects:
# a Python AF_UNIX datagram socket stands in for systemd as NOTIFY_SOCKET,
# and `chatbattle --roles serve` (no Kafka needed to start: the stats reader
# connects in the background) must send
#   READY=1 once running, WATCHDOG=1 at least every WATCHDOG_USEC / 2,
#   RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM, then exit 0;
# nothing at all without NOTIFY_SOCKET's socket being bound to us, no
# WATCHDOG=1 when WATCHDOG_PID names another process, and the abstract
# namespace ("@name") works too.
# Uses $CB_BIN (default build/asan/chatbattle).
set -uo pipefail
cd "${CB_ROOT:-.}" || exit 2
bin=${CB_BIN:-build/asan/chatbattle}
[ -x "$bin" ] || { echo "not ok - $bin is built"; exit 1; }

export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 - "$bin" <<'PY'
import os, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.getcwd(), "test", "integration", "lib"))
import cbtest  # noqa: E402 - Report: the ok/not ok protocol

BIN = sys.argv[1]
t = cbtest.Report()
check = t.check


class Notify:
    """A datagram socket playing systemd's side: collects every state
    message with its arrival time."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "chatbattle-test-%d-%d" % (os.getpid(), time.monotonic_ns() % 1000000)
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.dir = tempfile.mkdtemp(prefix="cb-sd-")
            self.env = os.path.join(self.dir, "notify")
            self.sock.bind(self.env)
        self.msgs = []  # (monotonic seconds, [state lines])

    def drain(self, timeout_s):
        """Reads until timeout_s passes without a message."""
        self.sock.settimeout(timeout_s)
        try:
            while True:
                data = self.sock.recv(4096)
                self.msgs.append((time.monotonic(), data.decode().split("\n")))
        except socket.timeout:
            pass

    def wait_for(self, state, timeout_s, after=0):
        """Waits until a message (index >= after) holds the line state;
        returns its index or None."""
        deadline = time.monotonic() + timeout_s
        while True:
            for i in range(after, len(self.msgs)):
                if state in self.msgs[i][1]:
                    return i
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
                self.msgs.append((time.monotonic(), data.decode().split("\n")))
            except socket.timeout:
                return None

    def close(self):
        self.sock.close()
        if hasattr(self, "dir"):
            os.unlink(self.env)
            os.rmdir(self.dir)


def start(notify, extra_env):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "TWITCH_CHANNEL",
                        "CHATBATTLE_CONFIG", "PORT")}
    env["NOTIFY_SOCKET"] = notify.env
    env.update(extra_env)
    log = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen([BIN, "--roles", "serve", "--port", "0", "--kafka-brokers", "127.0.0.1:1",
                          "--log-level", "warn"], env=env, stdout=log, stderr=subprocess.STDOUT)
    return p, log


def finish(p, log):
    """SIGTERM (if still running), bounded wait; returns (status, log text)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    log.seek(0)
    return rc, log.read()


def states(notify, start=0):
    return [s for _, lines in notify.msgs[start:] for s in lines if s]


# --- the whole life cycle, with a watchdog of 1 s -----------------------------
WD_S = 1.0
n = Notify()
p, log = start(n, {"WATCHDOG_USEC": str(int(WD_S * 1e6))})
try:
    ready = n.wait_for("READY=1", 60)
    check(ready is not None, "READY=1 once running")
    check(ready is not None and "STATUS=running" in n.msgs[ready][1],
          "STATUS=running comes with READY=1", n.msgs[:3])
    # Watch the watchdog for 3.5 intervals: pings at about WD_S / 2.
    if ready is not None:
        t0 = n.msgs[ready][0]
        while time.monotonic() < t0 + 3.5 * WD_S:
            n.wait_for("__never__", t0 + 3.5 * WD_S - time.monotonic())
        pings = [t for t, lines in n.msgs if "WATCHDOG=1" in lines]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        check(len(pings) >= 4, "WATCHDOG=1 at least every WATCHDOG_USEC / 2 (%d pings in %.1f s)"
              % (len(pings), 3.5 * WD_S), pings)
        check(gaps and max(gaps) < WD_S,
              "no gap between WATCHDOG=1 pings reaches WATCHDOG_USEC (largest %.3f s)"
              % (max(gaps) if gaps else -1))
    # SIGHUP: reload
    mark = len(n.msgs)
    p.send_signal(signal.SIGHUP)
    rl = n.wait_for("RELOADING=1", 30, mark)
    check(rl is not None, "SIGHUP: RELOADING=1")
    rd = n.wait_for("READY=1", 30, rl + 1 if rl is not None else mark)
    check(rl is not None and rd is not None and rd > rl, "SIGHUP: READY=1 after RELOADING=1")
    check(p.poll() is None, "still running after SIGHUP")
    # SIGTERM: stop
    mark = len(n.msgs)
    p.send_signal(signal.SIGTERM)
    st = n.wait_for("STOPPING=1", 60, mark)
    check(st is not None, "SIGTERM: STOPPING=1")
finally:
    rc, text = finish(p, log)
n.drain(0.1)
check(rc == 0, "SIGTERM: exit status 0 (got %s)" % rc, text[-2000:])
after_stop = states(n, st + 1) if st is not None else []
check(not [s for s in after_stop if s in ("READY=1", "WATCHDOG=1")],
      "nothing claims readiness after STOPPING=1", after_stop)
n.close()

# --- abstract socket, no watchdog, WATCHDOG_PID of another process ------------
n = Notify(abstract=True)
p, log = start(n, {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
try:
    ready = n.wait_for("READY=1", 60)
    check(ready is not None, "READY=1 over an abstract-namespace NOTIFY_SOCKET (@name)")
    n.drain(0.5)
    check("WATCHDOG=1" not in states(n),
          "no WATCHDOG=1 when WATCHDOG_PID names another process", states(n))
finally:
    rc, text = finish(p, log)
check(rc == 0, "exit status 0 after SIGTERM (abstract socket)", text[-2000:])
n.close()

# --- no NOTIFY_SOCKET: runs and stops the same --------------------------------
env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "TWITCH_CHANNEL", "PORT")}
log = tempfile.TemporaryFile(mode="w+")
p = subprocess.Popen([BIN, "--roles", "serve", "--port", "0", "--kafka-brokers", "127.0.0.1:1",
                      "--log-level", "info"], env=env, stdout=log, stderr=subprocess.STDOUT)
deadline = time.monotonic() + 60
seen = False
while time.monotonic() < deadline and p.poll() is None:
    log.seek(0)
    if "running:" in log.read():
        seen = True
        break
    time.sleep(0.05)
rc, text = finish(p, log)
check(seen and rc == 0, "without NOTIFY_SOCKET: runs, and SIGTERM exits 0", text[-2000:])
t.exit()
PY
