#!/usr/bin/env bash
# The node agent's reaction times and the memory of what supervises containers. Needs root.
#
#   bash bench/agent.sh [RUNS_RESTART [RUNS_LIVENESS [PODS]]]     (default 20 10 10)
#
# - restart latency: a container exits by itself (1 s after its start); from its exit to the
#   first instruction of its replacement, both read inside the containers from /proc/uptime
#   (the host's clock, 10 ms resolution), so no polling of the API is counted;
# - liveness detection: an exec liveness probe (periodSeconds 1, failureThreshold 1) starts to
#   fail when the container removes its file (at a random point of a period); from that moment
#   to the container's TERM trap: the wait for the next probe (uniform over one period, so
#   about 500 ms on average by itself) + the probe + Killing + the signal;
# - supervision memory: RSS and PSS (/proc/PID/smaps_rollup) of berth's shims (one
#   `berth-shim` process per container, forked by the daemon's zygote) with PODS idle pods, next to conmon's figures
#   measured earlier on this machine (2.4 MB RSS, 0.43 MB PSS per container).
#
# The daemon's CrashLoopBackOff is set to 1ms/1ms: 0 is refused (`backoff must be longer than
# 0`, agent/src/restart.rs), and a 1 ms backoff is below what the measurements resolve.
#
# BERTH=/path/to/berth uses that binary instead of building `--release` (figures of a debug
# build are not comparable for memory).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
runs_restart=${1:-20}
runs_liveness=${2:-10}
pods=${3:-10}

apt_install busybox-static jq bc
if [ -z "${BERTH:-}" ]; then
  cargo build --release --locked -p berth
  BERTH=$(berth_bin release)
fi
berth=$BERTH

work=$(mktemp -d /tmp/berth-bench-agent.XXXXXX)
export BERTH_ROOT=$work/root BERTH_RUN_DIR=$work/run BERTH_SOCKET=$work/run/berth.sock
bridge=bba$$
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  # The daemon leaves containers running by design; remove them and the pods' sandboxes.
  for id in $("$berth" container ls --quiet 2>/dev/null); do "$berth" container rm -f "$id" >/dev/null 2>&1 || true; done
  for sb in "$work"/run/sandboxes/*; do
    [ -d "$sb" ] || continue
    for ns in net ipc uts; do umount -l "$sb/$ns" 2>/dev/null || true; done
    umount -l "$sb" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/busybox-rootfs.sh "$work/rootfs" >/dev/null
"$berth" image build "$work/rootfs" --tag busybox >/dev/null

"$berth" daemon --backoff-initial 1ms --backoff-max 1ms --bridge "$bridge" --pod-cidr 10.198.$(($$ % 250)).0/24 \
  >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 300); do "$berth" get ns -o name >/dev/null 2>&1 && break; sleep 0.1; done
"$berth" get ns -o name >/dev/null || { tail -20 "$work/daemon.log"; exit 1; }

# stats "label" < numbers: n, median, p90, min, max (nearest rank).
stats() {
  sort -n | awk -v label="$1" '{ v[NR] = $1 } END {
    if (NR == 0) { printf "%-28s no samples\n", label; exit }
    p50 = v[int((NR + 1) / 2)]; i = int(NR * 0.9 + 0.999); if (i > NR) i = NR
    printf "%-28s n=%-3d median %4.0f ms   p90 %4.0f ms   min %4.0f ms   max %4.0f ms\n",
      label, NR, p50 * 1000, v[i] * 1000, v[1] * 1000, v[NR] * 1000 }'
}
restarts() { "$berth" get pod "$1" -o json | jq '.status.containerStatuses[0].restartCount // 0'; }
wait_restarts() { # POD N
  for _ in $(seq 1200); do [ "$(restarts "$1")" -ge "$2" ] && return; sleep 0.1; done
  echo "timeout waiting for $2 restarts of $1" >&2; exit 1
}

# --- restart latency -------------------------------------------------------------------------
mkdir -p "$work/restart"
cat >"$work/restart.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: restart
spec:
  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "echo start \$(cut -d' ' -f1 /proc/uptime) >> /data/log; sleep 1; echo exit \$(cut -d' ' -f1 /proc/uptime) >> /data/log; exit 1"]
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      hostPath: {path: $work/restart}
EOF
"$berth" apply -f "$work/restart.yaml" >/dev/null
wait_restarts restart "$runs_restart"
"$berth" delete pod restart >/dev/null
# Each "exit T" followed by the next "start T'": T' - T.
awk '$1 == "exit" { e = $2 } $1 == "start" && e != "" { print $2 - e; e = "" }' "$work/restart/log" |
  head -n "$runs_restart" | stats "exit -> replacement running"

# --- liveness detection ----------------------------------------------------------------------
mkdir -p "$work/live"
cat >"$work/live.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: live
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - name: main
      image: busybox
      command:
        - sh
        - -c
        - |
          touch /tmp/alive
          trap 'echo term \$(cut -d" " -f1 /proc/uptime) >> /data/log; exit 0' TERM
          # A random moment within a probe period, so that probes and breaks do not phase-lock.
          sleep 2.\$(printf %03d \$((RANDOM % 1000)))
          echo broke \$(cut -d" " -f1 /proc/uptime) >> /data/log
          rm /tmp/alive
          while :; do sleep 1000 & wait \$!; done
      livenessProbe:
        exec: {command: ["cat", "/tmp/alive"]}
        initialDelaySeconds: 1
        periodSeconds: 1
        failureThreshold: 1
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      hostPath: {path: $work/live}
EOF
"$berth" apply -f "$work/live.yaml" >/dev/null
wait_restarts live "$runs_liveness"
"$berth" delete pod live >/dev/null
awk '$1 == "broke" { b = $2 } $1 == "term" && b != "" { print $2 - b; b = "" }' "$work/live/log" |
  head -n "$runs_liveness" | stats "liveness fail -> SIGTERM"
echo "  (Unhealthy events: $("$berth" get events -o json | jq '[.items[] | select(.reason == "Unhealthy" and .involvedObject.name == "live") | .count // 1] | add // 0'))"

for _ in $(seq 300); do [ "$("$berth" get pods -o name | wc -l)" = 0 ] && break; sleep 0.2; done

# --- supervision memory ----------------------------------------------------------------------
for i in $(seq "$pods"); do
  cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: idle-$i
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox
      command: ["sleep", "3600"]
EOF
done >"$work/idle.yaml"
"$berth" apply -f "$work/idle.yaml" >/dev/null
for _ in $(seq 600); do
  running=$("$berth" get pods -o json | jq '[.items[] | select(.status.containerStatuses[0].state.running)] | length')
  [ "$running" -ge "$pods" ] && break
  sleep 0.2
done
sleep 2
# This run's shims, from the containers' state files (a shim forked by the daemon's zygote
# shows the zygote's command line; its name is berth-shim).
shims=()
for state in "$work"/run/containers/*/state.json; do
  pid=$(jq -r '.shim_pid' "$state")
  [ -r "/proc/$pid/smaps_rollup" ] && shims+=("$pid")
done
echo "idle pods running: $running, shim processes: ${#shims[@]}"
for pid in "${shims[@]}"; do
  awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r, p }' "/proc/$pid/smaps_rollup"
done | awk -v n="${#shims[@]}" '{ r += $1; p += $2 } END {
  if (n == 0) { print "no shim found"; exit }
  printf "berth shim per container:   RSS %.2f MB   PSS %.2f MB   (%d shims: RSS %.1f MB, PSS %.1f MB)\n",
    r / n / 1024, p / n / 1024, n, r / 1024, p / 1024 }'
zygote=$(pgrep -x berth-zygote -P "$daemon" || true)
if [ -n "$zygote" ]; then
  awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END {
    printf "berth zygote (one per daemon): RSS %.2f MB   PSS %.2f MB\n", r / 1024, p / 1024 }' "/proc/$zygote/smaps_rollup"
fi
echo "conmon per container:        RSS 2.40 MB   PSS 0.43 MB   (measured earlier on this machine)"
awk '/VmRSS/ { printf "daemon RSS with %s idle pods: %.1f MB\n", n, $2 / 1024 }' n="$pods" "/proc/$daemon/status"
