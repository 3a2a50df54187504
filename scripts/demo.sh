#!/usr/bin/env bash
# berth's demo on a fresh Debian machine (as root): builds berth and a busybox image from Debian's
# busybox-static, starts the daemon, deploys examples/, and shows the pods, a request through the
# web Service, a rolling update, logs and events. Stops the daemon and removes what it deployed at
# the end unless KEEP=1 (then the daemon keeps running; stop it with `kill $(cat $BERTH_RUN_DIR/demo.pid)`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
apt_install busybox-static curl

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
began=$(date +%s)

step "building berth (release)"
cargo build --release --locked -p berth
berth=$(berth_bin release)
export BERTH_ROOT=${BERTH_ROOT:-/var/lib/berth} BERTH_RUN_DIR=${BERTH_RUN_DIR:-/run/berth}
export BERTH_SOCKET=${BERTH_SOCKET:-$BERTH_RUN_DIR/berth.sock}
mkdir -p "$BERTH_RUN_DIR"

step "building the image berth.local/busybox:latest from busybox-static"
rootfs=$(mktemp -d /tmp/berth-demo-rootfs.XXXXXX)
bash scripts/busybox-rootfs.sh "$rootfs" >/dev/null
"$berth" image build "$rootfs" --tag berth.local/busybox:latest --cmd /bin/sh
rm -rf "$rootfs"

step "starting the daemon (log: $BERTH_RUN_DIR/demo-daemon.log)"
deploy_began=$(date +%s)
if "$berth" get namespaces -o name >/dev/null 2>&1; then
  echo "a berth daemon is already running on $BERTH_SOCKET; using it"
  daemon=
else
  # Short CrashLoopBackOff so that the crashing example shows several restarts in a minute.
  "$berth" daemon --backoff-initial 2s --backoff-max 20s >"$BERTH_RUN_DIR/demo-daemon.log" 2>&1 &
  daemon=$!
  echo "$daemon" >"$BERTH_RUN_DIR/demo.pid"
  for _ in $(seq 100); do "$berth" get namespaces -o name >/dev/null 2>&1 && break; sleep 0.1; done
fi
cleanup() {
  [ -n "${KEEP:-}" ] && return
  step "cleaning up: berth delete -f examples/, then stopping the daemon"
  "$berth" delete -f examples/ || true
  for _ in $(seq 120); do [ -z "$("$berth" get pods -A -o name 2>/dev/null)" ] && break; sleep 0.5; done
  if [ -n "$daemon" ]; then kill "$daemon" && wait "$daemon" || true; fi
}
trap cleanup EXIT

step "berth apply -f examples/"
"$berth" apply -f examples/

step "berth rollout status deployment/web"
"$berth" rollout status deployment/web --timeout 2m

step "berth get pods -A -o wide"
"$berth" get pods -A -o wide

step "berth get deployments,services"
"$berth" get deployments -A
"$berth" get services -A

step "a request through the web Service (NodePort 30080 on the host)"
for _ in $(seq 50); do
  if out=$(curl -fsS -m 2 http://127.0.0.1:30080/ 2>/dev/null); then break; fi
  sleep 0.2
done
echo "GET http://127.0.0.1:30080/ -> ${out:-<no answer>}"

step "a rolling update gated by readiness: berth rollout restart deployment/web"
"$berth" rollout restart deployment/web
"$berth" rollout status deployment/web --timeout 2m
"$berth" rollout history deployment/web

step "the crashing worker restarts with CrashLoopBackOff"
sleep 5
"$berth" get pods -l app=crashloop

step "the shop frontend reaches its backend by Service name: berth logs -n shop deployment/frontend"
"$berth" logs -n shop deployment/frontend --tail 4

step "berth get events (last 10)"
"$berth" get events -A | tail -n 10

printf '\n\033[1mdemo done in %ss (%ss from starting the daemon)\033[0m\n' \
  "$(($(date +%s) - began))" "$(($(date +%s) - deploy_began))"
