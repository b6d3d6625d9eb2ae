"""cbcql - the few Cassandra helpers the integration tests share, on top
of Debian's python3-cassandra (the DataStax Python driver).  Run it with
/usr/bin/python3: the python3 on PATH may be another installation without
the driver.

connect(): a session to one node, retried until a deadline, because a node
that answers OPTIONS may still be creating its default superuser (with
CB_CASSANDRA_AUTH=1) for a moment.
statements(): splits a .cql file on ';' after dropping full-line comments
('--' or '//'): simpler than chatbattle init's splitter (which also knows
string literals and block comments), so cql/ keeps semicolons out of
literals and comments for the tests' sake.
"""

import logging
import os
import time

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import RoundRobinPolicy

# The driver logs protocol downgrades and similar noise as warnings.
logging.getLogger("cassandra").setLevel(logging.ERROR)


def host_port(spec=None):
    """Returns (host, port) from "host:port", CB_CASSANDRA, or the default."""
    spec = spec or os.environ.get("CB_CASSANDRA") or "127.0.0.1:%s" % os.environ.get(
        "CB_CASSANDRA_PORT", "9042")
    host, _, port = spec.rpartition(":")
    return host, int(port)


def auth_provider():
    """PlainTextAuthProvider when the stack runs with CB_CASSANDRA_AUTH=1 or
    CASSANDRA_USERNAME is set, else None."""
    user = os.environ.get("CASSANDRA_USERNAME")
    password = os.environ.get("CASSANDRA_PASSWORD")
    if not user and os.environ.get("CB_CASSANDRA_AUTH") == "1":
        user, password = "cassandra", "cassandra"
    if not user:
        return None
    return PlainTextAuthProvider(username=user, password=password or "")


def connect(spec=None, timeout_s=60.0, keyspace=None):
    """Returns (cluster, session) connected to spec ("host:port"); retries
    every half second until timeout_s.  The caller shuts the cluster down."""
    host, port = host_port(spec)
    deadline = time.monotonic() + timeout_s
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=30)
    while True:
        cluster = Cluster([host], port=port, auth_provider=auth_provider(),
                          execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                          connect_timeout=5)
        try:
            return cluster, cluster.connect(keyspace)
        except NoHostAvailable as e:
            cluster.shutdown()
            if time.monotonic() >= deadline:
                raise RuntimeError("cannot connect to Cassandra at %s:%d: %s" % (host, port, e))
            time.sleep(0.5)


def statements(text):
    """Splits CQL text into statements: drops full-line comments, splits on
    ';', drops empty pieces."""
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or stripped.startswith("//"):
            continue
        kept.append(line)
    return [s.strip() for s in "\n".join(kept).split(";") if s.strip()]
