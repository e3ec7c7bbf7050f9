#!/usr/bin/env bash
# A Qstore cluster to try on one machine (Docs/cluster.md): 3 etcd members and 3 Qstore nodes,
# each pair in a network namespace of its own joined to a bridge by a veth pair — separate hosts
# on one machine (10.77.0.11–13). Needs root and iproute2; etcd and etcdctl from Debian's etcd-server and etcd-client.
#
#   sudo Scripts/cluster-up.sh [up]     start (builds qstore first unless QSTORE_BIN is set)
#   sudo Scripts/cluster-up.sh status   the cluster's peers and pins, seen from node 1
#   sudo Scripts/cluster-up.sh down     stop everything and remove the namespaces
#
# Then, from the host:  QSTORE_API=10.77.0.11:5001 QSTORE_API_TOKEN=$(cat $CLUSTER_DIR/n1/repo/api-token) qstore cluster peers
# Environment: CLUSTER_DIR (default /tmp/qstore-cluster), QSTORE_BIN, NODES (default 3),
# QSTORE_CLUSTER_REPAIR_GRACE (default 30s here); CLUSTER_NET (the /24's first three numbers,
# default 10.77.0) and CLUSTER_NAME (the namespaces' and links' prefix, at most 6 characters,
# default qs), so that two clusters (two test runs) can be up at once.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${CLUSTER_DIR:-/tmp/qstore-cluster}
NODES=${NODES:-3}
NET=${CLUSTER_NET:-10.77.0}
NAME=${CLUSTER_NAME:-qs}
BRIDGE=${NAME}br0
command=${1:-up}

ip_of() { echo "$NET.$((10 + $1))"; }
etcd_endpoints() { local e=""; for i in $(seq 1 "$NODES"); do e="$e${e:+,}http://$(ip_of "$i"):2379"; done; echo "$e"; }

down() {
  for i in $(seq 1 "$NODES"); do
    for f in "$DIR/n$i/qstore.pid" "$DIR/n$i/etcd.pid"; do
      [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done
    ip netns del "$NAME$i" 2>/dev/null || true
    ip link del "$NAME$i-h" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
}

up() {
  command -v ip >/dev/null || { echo "iproute2 (ip) is needed" >&2; exit 1; }
  command -v etcd >/dev/null || { echo "etcd is needed: apt-get install etcd-server" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }
  BIN=${QSTORE_BIN:-}
  if [ -z "$BIN" ]; then
    swift build -c release --product qstore >/dev/null
    BIN=$PWD/.build/release/qstore
  fi
  down
  mkdir -p "$DIR"
  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local cluster=""
  for i in $(seq 1 "$NODES"); do cluster="$cluster${cluster:+,}e$i=http://$(ip_of "$i"):2380"; done
  for i in $(seq 1 "$NODES"); do
    local ns="$NAME$i" addr
    addr=$(ip_of "$i")
    mkdir -p "$DIR/n$i"
    ip netns add "$ns"
    ip link add "$NAME$i-h" type veth peer name "$NAME$i-n"
    ip link set "$NAME$i-n" netns "$ns"
    ip link set "$NAME$i-h" master "$BRIDGE" up
    ip netns exec "$ns" ip addr add "$addr/24" dev "$NAME$i-n"
    ip netns exec "$ns" ip link set "$NAME$i-n" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" etcd --name "e$i" --data-dir "$DIR/n$i/etcd" \
      --listen-client-urls "http://$addr:2379" --advertise-client-urls "http://$addr:2379" \
      --listen-peer-urls "http://$addr:2380" --initial-advertise-peer-urls "http://$addr:2380" \
      --initial-cluster "$cluster" --initial-cluster-state new >"$DIR/n$i/etcd.log" 2>&1 &
    echo $! >"$DIR/n$i/etcd.pid"
  done
  for i in $(seq 1 "$NODES"); do
    local addr
    addr=$(ip_of "$i")
    ip netns exec "$NAME$i" env QSTORE_PATH="$DIR/n$i/repo" HOME="$DIR/n$i" QSTORE_CLUSTER_NODE_ID="n$i" QSTORE_CLUSTER_ZONE="z$i" \
      QSTORE_CLUSTER_REPAIR_GRACE="${QSTORE_CLUSTER_REPAIR_GRACE:-30s}" \
      "$BIN" daemon --api "$addr:5001" --gateway "$addr:8080" --cluster "etcd=$(etcd_endpoints)" >"$DIR/n$i/qstore.log" 2>&1 &
    echo $! >"$DIR/n$i/qstore.pid"
  done
  for _ in $(seq 1 100); do
    [ -s "$DIR/n1/repo/api-token" ] && curl -sf -H "Authorization: Bearer $(cat "$DIR/n1/repo/api-token")" "http://$(ip_of 1):5001/q/v1/cluster/peers" 2>/dev/null \
      | grep -q "\"n$NODES\"" && break
    sleep 0.3
  done
  echo "cluster up: $NODES nodes at $(ip_of 1)…$(ip_of "$NODES") (API :5001, gateway :8080), etcd $(etcd_endpoints)"
  echo "  QSTORE_API=$(ip_of 1):5001 QSTORE_API_TOKEN=\$(cat $DIR/n1/repo/api-token) $BIN cluster peers"
}

status() {
  local token
  token=$(cat "$DIR/n1/repo/api-token")
  curl -s -H "Authorization: Bearer $token" "http://$(ip_of 1):5001/q/v1/cluster/peers"; echo
  curl -s -H "Authorization: Bearer $token" "http://$(ip_of 1):5001/q/v1/cluster/pins"; echo
}

case "$command" in
  up) up ;;
  down) down; echo "cluster down" ;;
  status) status ;;
  *) echo "usage: $0 [up|status|down]" >&2; exit 64 ;;
esac
