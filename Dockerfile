# Dockerfile - chatbattle in a Debian bookworm image, in two stages.
#
#   build    the Debian -dev packages (tools/deps.sh build), then make: the
#            release binary ./chatbattle, built for PREFIX=/usr so that it
#            looks for its data files in /usr/share/chatbattle.
#   runtime  only the shared libraries the binary links, curl for the health
#            check, a non-root user; the binary, man pages, topics/ and cql/.
#
# The container writes nothing at run time (state is in Kafka and Cassandra,
# logs go to stderr), so it runs with a read-only root filesystem; give it a
# small tmpfs on /tmp only for `chatbattle simulate`, which writes its
# certificate there.  It needs no capability.
#
# Used by compose.yml (service "chatbattle"); by hand:
#   docker build -t chatbattle .
#   docker run --rm --read-only --cap-drop ALL --security-opt no-new-privileges \
#     -p 127.0.0.1:3000:3000 -e TWITCH_CHANNEL=foo -e CHATBATTLE_API_TOKEN=... \
#     -e KAFKA_BOOTSTRAP_SERVERS=kafka:9092 -e CASSANDRA_HOSTS=cassandra chatbattle
# (HTTP_BIND_ADDRESS is 0.0.0.0 in the image, so that the published port
# reaches the server; chatbattle then requires CHATBATTLE_API_TOKEN.)

FROM debian:bookworm-slim AS build
WORKDIR /src
# deps.sh first and alone, so that the package layer is cached across source
# changes.  It runs apt-get update itself, and only when something is missing.
COPY tools/deps.sh tools/deps.sh
RUN tools/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" PREFIX=/usr && ./chatbattle --version

FROM debian:bookworm-slim AS runtime
# The run-time halves of the -dev packages chatbattle builds against
# (librdkafka, OpenSSL, jansson, libevent with its OpenSSL and pthreads
# parts, libmicrohttpd, lz4), CA certificates for TLS to Twitch, curl for
# HEALTHCHECK.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libssl3 libjansson4 \
      libevent-2.1-7 libevent-core-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7 \
      libmicrohttpd12 liblz4-1 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin chatbattle

COPY --from=build /src/chatbattle /usr/bin/chatbattle
COPY man/ /usr/share/chatbattle/man/
COPY topics/ /usr/share/chatbattle/topics/
COPY cql/ /usr/share/chatbattle/cql/

USER chatbattle
# Inside a container the HTTP server must listen on every interface for a
# published port to reach it (chatbattle's own default is 127.0.0.1).
ENV HTTP_BIND_ADDRESS=0.0.0.0 \
    PORT=3000
EXPOSE 3000
# /api/health answers 200 only while every dependency of the instance's
# roles is up (503 otherwise, which curl -f turns into a failure).  An
# instance without the serve role has no HTTP server: disable the check
# there (compose: healthcheck: disable: true).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT:-3000}/api/health" >/dev/null || exit 1
# SIGTERM stops chatbattle in order (the default, stated for clarity).
STOPSIGNAL SIGTERM
ENTRYPOINT ["chatbattle"]
