"""cluster-ring.py PORT HOST... - the Cassandra ring as its nodes see it,
for test/infra/cluster status and start (run with /usr/bin/python3, which
has Debian's python3-cassandra).

Each HOST that answers on PORT is asked, on a connection to that node only,
for its gossip view (system_views.gossip_info: every endpoint's STATUS) and
its internode connections (system_views.internode_outbound).  No JMX and no
nodetool: the nodes of test/infra/cluster run without JMX.

Prints one line per HOST:
    HOST UN|DN|UJ|UL|?N ... the view, e.g. "127.0.0.2 UN (3 of 3 agree)"
and exits 0 when every HOST is UN.  A node is
  U (up)      when it answers CQL and every other answering node has a live
              internode connection to it (gossip runs every second over
              those: a dead node's connections close and stay closed);
  N (normal)  when it and every other answering node see its gossip STATUS
              as NORMAL (J: joining/bootstrapping, L: leaving).
"""

import logging
import sys

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import cbcql  # noqa: E402  (after the path)

logging.getLogger("cassandra").setLevel(logging.CRITICAL)


def view_of(host, port):
    """Returns {address: (status word, connected)} as node host sees the
    ring, or None when host does not answer."""
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]),
                               request_timeout=5)
    cluster = Cluster([host], port=port, auth_provider=cbcql.auth_provider(),
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      connect_timeout=3, control_connection_timeout=3,
                      protocol_version=5)
    try:
        session = cluster.connect()
        view = {}
        for row in session.execute("SELECT address, status, status_with_port FROM system_views.gossip_info"):
            word = (row.status_with_port or row.status or "").split(",", 1)[0]
            view[str(row.address)] = [word, False]
        for row in session.execute(
                "SELECT address, active_connections FROM system_views.internode_outbound"):
            entry = view.setdefault(str(row.address), ["", False])
            entry[1] = (row.active_connections or 0) > 0
        return view
    except Exception:  # noqa: BLE001 - any failure means "does not answer"
        return None
    finally:
        cluster.shutdown()


STATE = {"NORMAL": "N", "BOOT": "J", "BOOT_REPLACE": "J", "LEAVING": "L", "LEFT": "L",
         "MOVING": "M", "shutdown": "N", "": "?"}


def main():
    port = int(sys.argv[1])
    hosts = sys.argv[2:]
    views = {h: view_of(h, port) for h in hosts}
    answering = [h for h in hosts if views[h] is not None]
    all_un = True
    for h in hosts:
        others = [o for o in answering if o != h]
        if views[h] is None:
            seen = [o for o in others if views[o].get(h, ["", False])[1]]
            note = "no CQL answer"
            if seen:
                note += "; still connected from " + ",".join(seen)
            print("%s DN (%s)" % (h, note))
            all_un = False
            continue
        own = views[h].get(h, ["", True])[0]
        connected = [o for o in others if views[o].get(h, ["", False])[1]]
        normal = [o for o in others if views[o].get(h, [""])[0] == "NORMAL"]
        up = len(connected) == len(others)
        state = STATE.get(own, "?")
        if own == "NORMAL" and len(normal) != len(others):
            state = "?"
        letters = ("U" if up else "D") + state
        detail = "%d of %d answering nodes connected to it, %d see it NORMAL" % (
            len(connected), len(others), len(normal))
        print("%s %s (%s, own status %s)" % (h, letters, detail, own or "unknown"))
        all_un = all_un and letters == "UN"
    sys.exit(0 if all_un else 1)


if __name__ == "__main__":
    main()
