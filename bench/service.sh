#!/usr/bin/env bash
# Service proxy overhead against 2 busybox httpd pods, side by side, measured two ways:
#   direct    to one pod's IP (no proxy: the baseline),
#   nodeport  through the NodePort on 127.0.0.1 (berth's userspace proxy),
#   clusterip through the Service's cluster IP (the same proxy, other listener).
# Prints requests/s and p99 latency of each and the ratio Service/direct. Needs root.
#
# Two load generators, because they disagree on what latency is. wrk (10 s per target) starts
# its clock once a connection is up, so on the direct path a SYN that httpd drops costs wrk
# throughput but never latency; through the proxy the client's connection is accepted at once
# and the same drop, on the proxy's connection to the pod, shows as latency. busybox httpd
# listens with a backlog of 9 (hard-coded), so under this load its accept queue overflows
# and the kernel retransmits the dropped SYN after 1 s: that is the ~1 s wrk p99 of the proxied
# paths. ab (apache2-utils, 20000 requests per target) counts connection set-up on every path,
# so its figures compare like with like. The script also prints, per target, the pod's
# ListenOverflows and the host's SYN retransmissions (nstat), which show the drops on the
# direct path too.
#
#   bash bench/service.sh [DURATION_SECONDS] [CONNECTIONS]
#
# BERTH_BIN=path skips the release build and uses that binary. The daemon gets a bridge, pod
# CIDR, cluster IP and node port of its own (btsvc, 10.193.7.0/24, 10.74.213.7, 30281) so it
# can run next to another daemon on the default berth0.
#
# "direct" hits one pod while the Service spreads over two: with busybox httpd (one process
# per connection, cheap) the pods are not the bottleneck on this machine, wrk and the proxy
# are, so the ratio measures the proxy. wrk's -c connections are kept alive only where httpd
# allows it (busybox httpd closes after each response), so every request is a new connection
# through the proxy as well.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
duration=${1:-10}
connections=${2:-16}
node_port=30281

apt_install busybox-static wrk apache2-utils jq bc
if [ -n "${BERTH_BIN:-}" ]; then
  berth=$BERTH_BIN
else
  cargo build --release --locked -p berth
  berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
fi

work=$(mktemp -d /tmp/berth-bench-service.XXXXXX)
export BERTH_ROOT=$work/root BERTH_RUN_DIR=$work/run BERTH_SOCKET=$work/run/berth.sock
daemon=
cleanup() {
  if [ -n "$daemon" ]; then
    "$berth" delete -f "$work/web.yaml" >/dev/null 2>&1 || true
    for _ in $(seq 100); do
      [ "$("$berth" get pods -o name 2>/dev/null | wc -l)" = 0 ] && break
      sleep 0.2
    done
    kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  fi
  # The daemon leaves containers running by design; remove them and the pods' sandboxes.
  for id in $("$berth" container ls --quiet 2>/dev/null); do "$berth" container rm -f "$id" >/dev/null 2>&1 || true; done
  for sb in "$work"/run/sandboxes/*; do
    [ -d "$sb" ] || continue
    for ns in net ipc uts; do umount -l "$sb/$ns" 2>/dev/null || true; done
    umount -l "$sb" 2>/dev/null || true
  done
  rm -rf "$work"
  # The daemon keeps its bridge and masquerade table across restarts by design; this one was
  # the benchmark's own.
  ip link del btsvc 2>/dev/null || true
  nft delete table ip berth_btsvc 2>/dev/null || true
}
trap cleanup EXIT

bash scripts/busybox-rootfs.sh "$work/rootfs" >/dev/null
"$berth" image build "$work/rootfs" --tag busybox --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --cmd sh >/dev/null

"$berth" daemon --bridge btsvc --pod-cidr 10.193.7.0/24 >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do "$berth" get ns -o name >/dev/null 2>&1 && break; sleep 0.1; done

cat >"$work/web.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: httpd
          image: busybox
          command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
          ports:
            - name: http
              containerPort: 8080
          readinessProbe:
            httpGet: {path: /, port: http}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  clusterIP: 10.74.213.7
  selector: {app: web}
  ports:
    - port: 8181
      targetPort: http
      nodePort: $node_port
EOF
"$berth" apply -f "$work/web.yaml" >/dev/null
"$berth" rollout status deployment/web --timeout 2m >/dev/null

pod_ip=$("$berth" get pods -o json | jq -r '[.items[]? // . | select(.status.podIP) | .status.podIP][0]')
cluster_ip=$("$berth" get service web -o json | jq -r '.spec.clusterIP')
[ -n "$pod_ip" ] && [ "$pod_ip" != null ] || { echo "no pod IP" >&2; exit 1; }
[ -n "$cluster_ip" ] && [ "$cluster_ip" != null ] || { echo "no cluster IP" >&2; exit 1; }

declare -A url=(
  [direct]="http://$pod_ip:8080/"
  [nodeport]="http://127.0.0.1:$node_port/"
  [clusterip]="http://$cluster_ip:8181/"
)
# Every target answers before the clock starts (the Service's endpoints follow readiness).
for target in direct nodeport clusterip; do
  for _ in $(seq 100); do wget -q -O /dev/null -T 2 "${url[$target]}" 2>/dev/null && break; sleep 0.2; done
  wget -q -O /dev/null -T 2 "${url[$target]}" || { echo "$target ${url[$target]} does not answer" >&2; exit 1; }
done

# wrk's p99 in ms, from `--latency` "99%" line (units us, ms or s).
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }
declare -A rps p99 ab_rps ab_p99
httpd_pid=$(pgrep -f "httpd -f -p 8080" | head -1)
# A TcpExt counter from a netstat file (/proc/net/netstat: the host; /proc/PID/net/netstat: the
# network namespace of PID).
tcpext() {
  awk -v key="$2" '$1 == "TcpExt:" { if (!n) { for (i = 2; i <= NF; i++) col[$i] = i; n = 1 } else print $col[key] }' "$1"
}
mark() { overflows0=$(tcpext "/proc/$httpd_pid/net/netstat" ListenOverflows); syn0=$(tcpext /proc/net/netstat TCPSynRetrans); }
counters() { # what the run since `mark` overflowed and retransmitted
  echo "pod ListenOverflows $(($(tcpext "/proc/$httpd_pid/net/netstat" ListenOverflows) - overflows0)), host SYN retransmits $(($(tcpext /proc/net/netstat TCPSynRetrans) - syn0))"
}
echo "== ab (latency including connection set-up), 20000 requests, $connections concurrent"
for target in direct nodeport clusterip; do
  mark
  out=$(ab -q -n 20000 -c "$connections" "${url[$target]}" 2>&1)
  echo "$out" >"$work/ab-$target.txt"
  ab_rps[$target]=$(awk '/^Requests per second:/ {print $4}' <<<"$out")
  ab_p99[$target]=$(awk '$1 == "99%" {print $2}' <<<"$out")
  failed=$(awk '/^Failed requests:/ {print $3}' <<<"$out")
  max=$(awk '$1 == "100%" {print $2}' <<<"$out")
  printf '%-9s %-28s %10s req/s   p99 %5s ms   max %5s ms   failed %s  (%s)\n' "$target" "${url[$target]}" "${ab_rps[$target]}" "${ab_p99[$target]}" "$max" "$failed" "$(counters)"
done
echo "== wrk (latency from an established connection), ${duration}s, $connections connections"
for target in direct nodeport clusterip; do
  mark
  out=$(wrk --latency -t 2 -c "$connections" -d "${duration}s" "${url[$target]}")
  echo "$out" >"$work/wrk-$target.txt"
  rps[$target]=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99[$target]=$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)
  errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
  printf '%-9s %-28s %10s req/s   p99 %8s ms   %s  (%s)\n' "$target" "${url[$target]}" "${rps[$target]}" "${p99[$target]}" "$errors" "$(counters)"
done
for target in nodeport clusterip; do
  printf '%-9s / direct: wrk throughput %.2fx, p99 %.2fx;   ab throughput %.2fx, p99 %.2fx\n' "$target" \
    "$(echo "${rps[$target]} / ${rps[direct]}" | bc -l)" \
    "$(echo "${p99[$target]} / ${p99[direct]}" | bc -l)" \
    "$(echo "${ab_rps[$target]} / ${ab_rps[direct]}" | bc -l)" \
    "$(echo "${ab_p99[$target]} / ${ab_p99[direct]}" | bc -l)"
done
