#!/usr/bin/env bash
# Service overhead against 2 busybox httpd pods, side by side, measured two ways:
#   direct    to one pod's IP (no Service: the baseline),
#   nodeport  through the NodePort on 127.0.0.1 (nf_tables DNAT, masqueraded to the bridge),
#   clusterip through the Service's cluster IP (nf_tables DNAT).
# Prints requests/s and p99 latency of each and the ratio Service/direct; then, through the
# node port under load, the time from a pod's deletion to its last new connection and from a
# new pod's Ready to its first (bench/endpoints.py). Needs root.
#
# Two load generators, because they disagree on what latency is. wrk starts its clock once a
# connection is up; ab (apache2-utils, 20000 requests per target) counts connection set-up on
# every path. busybox httpd listens with a backlog of 9 (hard-coded), so under load its accept
# queue can overflow and a SYN waits a second for its retransmission: the script prints, per
# run, the pod's ListenOverflows and the host's SYN retransmissions (nstat).
#
# Every run gets pods of its own (a rollout restart before it). All three paths reach the pods
# from the same host address (the bridge's), so the 4-tuples of one run's connections come
# back in the next while the pod still holds them in TIME_WAIT, with sequence numbers and
# timestamps from another origin: the kernel then answers SYNs with a bare ACK and the client
# retransmits. Measured on the same pods, whichever target ran second lost half its throughput
# to that (direct after nodeport as much as nodeport after direct), which is the benchmark
# measuring itself.
#
#   bash bench/service.sh [DURATION_SECONDS] [CONNECTIONS]
#
# BERTH_BIN=path skips the release build and uses that binary. The daemon gets a bridge, pod
# CIDR, cluster IP and node port of its own (btsvc, 10.193.7.0/24, 10.74.213.7, 30281) so it
# can run next to another daemon on the default berth0.
#
# "direct" hits one pod while the Service spreads over two: with busybox httpd (one process
# per connection, cheap) the pods are not the bottleneck on this machine, the load generator
# is, so the ratio measures the Service's data path. busybox httpd closes after each response,
# so every request is a new connection on every path.
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
  berth=$(berth_bin release)
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
          command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
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

cluster_ip=$("$berth" get service web -o json | jq -r '.spec.clusterIP')
[ -n "$cluster_ip" ] && [ "$cluster_ip" != null ] || { echo "no cluster IP" >&2; exit 1; }
declare -A url

# New pods for the next run (see the top), every target answering before the clock starts.
fresh_pods() {
  "$berth" rollout restart deployment/web >/dev/null
  "$berth" rollout status deployment/web --timeout 2m >/dev/null
  for _ in $(seq 100); do
    [ "$("$berth" get pods -o name | wc -l)" = 2 ] && break
    sleep 0.2
  done
  pod_ip=$("$berth" get pods -o json | jq -r '[.items[]? // . | select(.status.podIP) | .status.podIP][0]')
  [ -n "$pod_ip" ] && [ "$pod_ip" != null ] || { echo "no pod IP" >&2; exit 1; }
  url=(
    [direct]="http://$pod_ip:8080/"
    [nodeport]="http://127.0.0.1:$node_port/"
    [clusterip]="http://$cluster_ip:8181/"
  )
  local t
  for t in direct nodeport clusterip; do
    for _ in $(seq 100); do wget -q -O /dev/null -T 2 "${url[$t]}" 2>/dev/null && break; sleep 0.2; done
    wget -q -O /dev/null -T 2 "${url[$t]}" || { echo "$t ${url[$t]} does not answer" >&2; nft list table ip berth_svc_btsvc >&2; "$berth" get endpoints web -o yaml >&2; "$berth" get pods -o wide >&2; exit 1; }
  done
  httpd_pid=$(pgrep -f "httpd -f -p 8080" | head -1)
}

# wrk's p99 in ms, from `--latency` "99%" line (units us, ms or s).
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }
declare -A rps p99 ab_rps ab_p99
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
  fresh_pods
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
  fresh_pods
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

echo "== the Service following its pods (bench/endpoints.py, 5 pod deletions under load through the node port)"
python3 bench/endpoints.py "$BERTH_SOCKET" "http://127.0.0.1:$node_port/" app=web 5
