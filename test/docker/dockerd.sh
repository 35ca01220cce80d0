#!/usr/bin/env bash
# A private Docker daemon for the compose test: its own socket, data root, exec root and bridge, so it never
# touches a Docker the machine may run already. The data root persists between runs (the stand-in images and
# the build cache live there); the daemon itself is stopped after the test.
#   dockerd.sh start   → prints the DOCKER_HOST to use (exit 3 with a reason when no daemon can be started)
#   dockerd.sh stop
set -euo pipefail

RUN_DIR=/run/flashduck-test-docker
DATA_ROOT=${FLASHDUCK_TEST_DOCKER_ROOT:-/var/lib/flashduck-test-docker}
BRIDGE=fdtest-docker0
BRIDGE_CIDR=172.31.251.1/24
SOCKET=$RUN_DIR/docker.sock
PIDFILE=$RUN_DIR/dockerd.pid

cannot() { echo "$*" >&2; exit 3; }

answers() { DOCKER_HOST=unix://$SOCKET docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "${1:-}" in
  start)
    [ "$(id -u)" = 0 ] || cannot "a private dockerd needs root (running as uid $(id -u))"
    command -v dockerd >/dev/null 2>&1 || cannot "dockerd is not installed (Debian: apt-get install docker.io)"
    command -v docker >/dev/null 2>&1 || cannot "the docker client is not installed (Debian: apt-get install docker.io)"
    mkdir -p "$RUN_DIR" "$DATA_ROOT"
    if ! answers; then
      if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add name "$BRIDGE" type bridge || cannot "cannot create the bridge $BRIDGE (no network administration here)"
        ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
      fi
      ip link set "$BRIDGE" up
      nohup dockerd --host "unix://$SOCKET" --data-root "$DATA_ROOT" --exec-root "$RUN_DIR/exec" --pidfile "$PIDFILE" \
        --bridge "$BRIDGE" --log-level warn >"$RUN_DIR/dockerd.log" 2>&1 &
      for _ in $(seq 1 120); do answers && break; sleep 0.5; done
      answers || cannot "dockerd did not start: $(tail -5 "$RUN_DIR/dockerd.log" | tr '\n' ' ')"
    fi
    echo "unix://$SOCKET"
    ;;
  stop)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      pid=$(cat "$PIDFILE")
      kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    ip link del "$BRIDGE" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
