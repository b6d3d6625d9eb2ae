#!/usr/bin/env bash
# simulate.sh - `chatbattle simulate` as a process: the first stdout line
# names the ports and the certificate; a TLS client that trusts only that
# certificate verifies it for 127.0.0.1 and localhost; the login handshake
# (CAP, 001, JOIN/353/366/ROOMSTATE), Improperly formatted auth; generated
# lines parse with `chatbattle irc-parse` and their emote ranges name the
# emotes; with --sim-count the simulator syncs, prints its final statistics
# (equal to what the client read) and exits 0; --sim-replay replays a file;
# --sim-channel-rates and "rate N CHANNEL" give channels their own rates;
# the Helix endpoint issues app tokens, serves streams with viewer counts
# and rate-limit headers, and answers 429 on demand.
# Uses $CB_BIN (default build/asan/chatbattle) and /usr/bin/python3 as the
# IRC client.
set -uo pipefail
cd "${CB_ROOT:-.}" || exit 2
bin=${CB_BIN:-build/asan/chatbattle}
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/cb-simulate-sh.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

"$py" - "$bin" "$tmp" <<'EOF'
import json, socket, ssl, subprocess, sys, time
bin, tmp = sys.argv[1], sys.argv[2]
failed = 0

def check(name, cond, info=""):
    global failed
    print(("ok - " if cond else "not ok - ") + name)
    if not cond:
        failed = 1
        if info:
            print("# " + str(info)[:500])

def start(*args):
    p = subprocess.Popen([bin, "simulate", "--sim-port=0", "--log-level=warn",
                          "--sim-cert-file=%s/sim.pem" % tmp] + list(args),
                         stdout=subprocess.PIPE, text=True)
    info = json.loads(p.stdout.readline())
    return p, info

class Client:
    def __init__(self, info, tls=True, host="127.0.0.1"):
        s = socket.create_connection((info["irc_host"], info["irc_port"]), timeout=20)
        if tls:
            ctx = ssl.create_default_context(cafile=info["cert_file"])
            s = ctx.wrap_socket(s, server_hostname=host)
        self.s, self.buf, self.lines = s, b"", []
    def send(self, text):
        self.s.sendall(text.encode() + b"\r\n")
    def read_until(self, pred, timeout=20):
        """Reads lines (answering PINGs) until pred(line) or EOF."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                line = line.decode("utf-8", "replace")
                if line.startswith("PING "):
                    self.send("PONG " + line[5:])
                    continue
                self.lines.append(line)
                if pred(line):
                    return line
            try:
                data = self.s.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.s.close()  # the server waits for our close
                return None
            self.buf += data
        return None

def ctl(info, cmd):
    c = socket.create_connection(("127.0.0.1", info["control_port"]), timeout=20)
    c.sendall(cmd.encode() + b"\n")
    f = c.makefile("r")
    r = f.readline().strip()
    c.close()
    return r

# 1. start line, TLS, handshake
p, info = start("--sim-rate=0")
check("first line names ports, TLS and the certificate",
      info["irc_port"] > 0 and info["control_port"] > 0 and info["tls"] is True
      and info["cert_file"].endswith("sim.pem"), info)
cl = Client(info)
cl.send("CAP REQ :twitch.tv/tags twitch.tv/commands")
cl.send("NICK justinfan4242")
cl.send("JOIN #demo")
got = cl.read_until(lambda l: "ROOMSTATE #demo" in l)
check("TLS verified for 127.0.0.1 with the written certificate; login and JOIN",
      got is not None
      and any(":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands" == l for l in cl.lines)
      and any(" 001 justinfan4242 " in l for l in cl.lines)
      and any(l == ":justinfan4242!justinfan4242@justinfan4242.tmi.twitch.tv JOIN #demo" for l in cl.lines)
      and any(" 366 justinfan4242 #demo " in l for l in cl.lines), cl.lines)
cl2 = Client(info, host="localhost")
cl2.send("PASS not-oauth-prefixed")
cl2.send("NICK someone")
got = cl2.read_until(lambda l: "NOTICE" in l)
check("localhost verifies too; a PASS without oauth: is Improperly formatted auth",
      got == ":tmi.twitch.tv NOTICE * :Improperly formatted auth", got)
st = json.loads(ctl(info, "stats"))
check("stats: one login ok (anonymous), one failed, channel joined",
      st["logins_ok"] == 1 and st["logins_anon"] == 1 and st["logins_failed"] == 1
      and st["channels"]["demo"]["joined"] == 1, st)
check("unknown control command is an error", ctl(info, "frobnicate").startswith("err "))
ctl(info, "quit")
check("quit: the simulator exits 0", p.wait(10) == 0)

# 2. --sim-count: exact ground truth, then stats and exit
p, info = start("--sim-rate=2000", "--sim-count=300", "--sim-channels=x,y",
                "--sim-malformed-rate=0.05", "--sim-event-rate=0.05",
                "--sim-tls=false")
cl = Client(info, tls=False)
cl.send("CAP REQ :twitch.tv/tags twitch.tv/commands")
cl.send("NICK justinfan1")
cl.send("JOIN #x,#y")
cl.read_until(lambda l: False, timeout=60)  # until the simulator closes
out, _ = p.communicate(timeout=20)
final = json.loads(out.strip().splitlines()[-1])
chat = [l for l in cl.lines if " PRIVMSG #" in l or " USERNOTICE #" in l
        or " CLEARCHAT #" in l or l.startswith(" malformed")]
check("--sim-count: exits 0 after the final sync", p.returncode == 0)
check("--sim-count: 300 lines per channel, counted exactly",
      all(sum(final["channels"][c][k] for k in ("messages", "events", "malformed")) == 300
          for c in ("x", "y")) and final["done"] is True, final)
n_priv = sum(1 for l in cl.lines if " PRIVMSG #x :" in l or " PRIVMSG #y :" in l)
n_ev = sum(1 for l in cl.lines if " USERNOTICE #" in l or " CLEARCHAT #" in l)
n_bad = sum(1 for l in cl.lines if "PRIVMSG #Not-A-Channel!" in l or l.startswith(" malformed")
            or (" PRIVMSG #" in l and l.endswith(" :")))
check("--sim-count: what the client read equals the statistics",
      n_ev == final["totals"]["events"] and n_bad == final["totals"]["malformed"]
      and n_priv - sum(1 for l in cl.lines if " PRIVMSG #" in l and l.endswith(" :"))
      == final["totals"]["messages"], (n_priv, n_ev, n_bad, final["totals"]))
with open(tmp + "/lines.txt", "w") as f:
    f.write("\n".join(cl.lines) + "\n")
parsed = subprocess.run([bin, "irc-parse"], stdin=open(tmp + "/lines.txt"),
                        capture_output=True, text=True)
recs = [json.loads(l) for l in parsed.stdout.splitlines()]
msgs = [r for r in recs if r.get("type") == "message"]
emote_names = {"Kappa", "PogChamp", "LUL", "Keepo", "4Head", "BibleThump",
               "Kreygasm", "ResidentSleeper", "NotLikeThis", "SeemsGood"}
details = [e for r in msgs for e in r.get("emote_details", [])]
check("generated chat parses: every message once, emote ranges name the emotes",
      len(msgs) == final["totals"]["messages"]
      and len({r["message_id"] for r in msgs}) == len(msgs)
      and len(details) > 0 and all(e["name"] in emote_names for e in details),
      (len(msgs), [e for e in details if e["name"] not in emote_names][:3]))
check("generated chat has non-ASCII text, /me, bits, replies and badges",
      any(any(ord(ch) > 0x2000 for ch in r["message"]) for r in msgs)
      and any(r.get("is_action") for r in msgs)
      and any(r.get("bits", 0) > 0 for r in msgs)
      and any("reply_parent" in r for r in msgs)
      and any(r.get("badges") for r in msgs))

# 3. replay
with open(tmp + "/replay.txt", "w") as f:
    for i in range(20):
        f.write("@id=00000000-0000-4000-8000-%012d;tmi-sent-ts=1700000000000 "
                ":u!u@u.tmi.twitch.tv PRIVMSG #r :replayed %d\r\n" % (i, i))
    f.write(":tmi.twitch.tv CLEARCHAT #r\n")
p, info = start("--sim-replay=%s/replay.txt" % tmp, "--sim-rate=0", "--sim-tls=false")
cl = Client(info, tls=False)
cl.send("NICK justinfan2")
cl.send("JOIN #r")
cl.read_until(lambda l: False, timeout=30)
out, _ = p.communicate(timeout=20)
final = json.loads(out.strip().splitlines()[-1])
check("--sim-replay: every line once, in order, then stats and exit",
      p.returncode == 0 and final["replay_lines"] == 21
      and final["channels"]["r"]["messages"] == 20
      and final["channels"]["r"]["events"] == 1
      and [l for l in cl.lines if "replayed" in l][-1].endswith("replayed 19"), final)
# 4. per-channel rates: --sim-channel-rates and "rate N CHANNEL"
p, info = start("--sim-rate=10", "--sim-channel-rates=fast=400,Slow=40",
                "--sim-event-rate=0", "--sim-tls=false")
cl = Client(info, tls=False)
cl.send("NICK justinfan3")
cl.send("JOIN #fast,#slow,#other")
seen = {"fast": 0}
def count_fast(l):
    if " PRIVMSG #fast :" in l:
        seen["fast"] += 1
    return seen["fast"] >= 800
cl.read_until(count_fast, timeout=60)
st = json.loads(ctl(info, "stats"))
ch = st["channels"]
check("--sim-channel-rates: each channel at its own rate, the others at --sim-rate",
      seen["fast"] >= 800 and ch["fast"]["rate"] == 400 and ch["slow"]["rate"] == 40
      and ch["other"]["rate"] == 10
      and ch["fast"]["messages"] > 4 * ch["slow"]["messages"] > 0
      and ch["slow"]["messages"] > 2 * ch["other"]["messages"], ch)
check("rate N CHANNEL sets one channel's rate",
      ctl(info, "rate 1000 other") == "ok"
      and json.loads(ctl(info, "stats"))["channels"]["other"]["rate"] == 1000
      and ctl(info, "rate 5 not-a-channel!").startswith("err ")
      and ctl(info, "rate 5x other").startswith("err "))
ctl(info, "quit")
p.wait(10)
bad = subprocess.run([bin, "simulate", "--sim-port=0", "--sim-tls=false",
                      "--sim-channel-rates=a=1,b=fast"], capture_output=True, text=True, timeout=20)
check("a bad --sim-channel-rates entry is refused, naming it",
      bad.returncode != 0 and '"b=fast"' in bad.stderr, bad.stderr)
# 5. the Helix endpoint: app token by client credentials, streams with
#    viewer counts and rate-limit headers, 429 on demand
import urllib.error, urllib.parse, urllib.request
p, info = start("--sim-rate=10", "--sim-channel-rates=big=20", "--sim-tls=false",
                "--sim-bad-token=wrongsecret")
helix = info.get("helix_url", "")
check("the first line names the Helix endpoint", helix.startswith("http://127.0.0.1:"), info)
def hx(method, path, data=None, headers=None):
    req = urllib.request.Request(helix + path, method=method, headers=headers or {},
                                 data=data.encode() if data is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")
form = "client_id=cid&client_secret=%s&grant_type=client_credentials"
st, _, tok = hx("POST", "/oauth2/token", form % "s3cret")
check("POST /oauth2/token: an app access token for client credentials",
      st == 200 and tok["token_type"] == "bearer" and tok["access_token"] and tok["expires_in"] > 0, tok)
st, _, body = hx("POST", "/oauth2/token", form % "wrongsecret")
check("a wrong client secret is 403", st == 403 and body["message"] == "invalid client secret", body)
st, _, body = hx("POST", "/oauth2/token", "client_id=cid&client_secret=x&grant_type=password")
check("another grant type is 400", st == 400, body)
cl = Client(info, tls=False)
cl.send("NICK justinfan5")
cl.send("JOIN #big,#small")
cl.read_until(lambda l: "ROOMSTATE #small" in l)
auth = {"Client-Id": "cid", "Authorization": "Bearer " + tok["access_token"]}
q = "/helix/streams?" + urllib.parse.urlencode([("user_login", c) for c in ("big", "small", "offline")])
st, _, body = hx("GET", q)
check("GET /helix/streams without credentials is 401", st == 401, body)
st, hd, body = hx("GET", q, headers=auth)
streams = {d["user_login"]: d for d in body.get("data", [])} if st == 200 else {}
check("GET /helix/streams: the joined channels are live with viewer counts (3000 per line/s)",
      st == 200 and sorted(streams) == ["big", "small"] and streams["big"]["viewer_count"] == 60000
      and streams["small"]["viewer_count"] == 30000 and streams["big"]["type"] == "live", body)
check("it sends the rate-limit headers",
      hd.get("Ratelimit-Limit") == "800" and int(hd.get("Ratelimit-Remaining", -1)) < 800
      and int(hd.get("Ratelimit-Reset", 0)) > time.time() - 1, hd)
check("viewers N CHANNEL sets a channel's viewers", ctl(info, "viewers 1234 small") == "ok"
      and {d["user_login"]: d["viewer_count"] for d in hx("GET", q, headers=auth)[2]["data"]}["small"] == 1234)
st, _, body = hx("GET", "/helix/streams?" + "&".join("user_login=c%d" % i for i in range(101)), headers=auth)
check("more than 100 logins in one request is 400", st == 400, body)
check("helix429 N: the next N requests get 429 with Ratelimit-Reset",
      ctl(info, "helix429 2") == "ok")
codes = [hx("GET", q, headers=auth)[:2] for _ in range(3)]
check("429 twice (Ratelimit-Remaining 0, Ratelimit-Reset in the future), then 200 again",
      [c for c, _ in codes] == [429, 429, 200] and codes[0][1].get("Ratelimit-Remaining") == "0"
      and int(codes[0][1].get("Ratelimit-Reset", 0)) >= int(time.time()), codes)
hstats = json.loads(ctl(info, "stats"))["helix"]
check("stats count Helix tokens, requests and 429s",
      hstats["tokens"] == 1 and hstats["throttled"] == 2 and hstats["requests"] >= 6, hstats)
ctl(info, "quit")
p.wait(10)
sys.exit(failed)
EOF
