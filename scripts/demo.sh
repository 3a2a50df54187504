#!/usr/bin/env bash
# berth's demo on a fresh Debian machine (as root): builds berth and a busybox image from Debian's
# busybox-static, runs containers with the built-in runtime, and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
apt_install busybox-static

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building berth (release)"
cargo build --release --locked -p berth
berth=$PWD/target/release/berth
export BERTH_ROOT=${BERTH_ROOT:-/var/lib/berth} BERTH_RUN_DIR=${BERTH_RUN_DIR:-/run/berth}

step "building the image berth.local/busybox:latest from busybox-static"
rootfs=$(mktemp -d /tmp/berth-demo-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"; "$berth" container rm -f demo-web >/dev/null 2>&1 || true' EXIT
bash scripts/busybox-rootfs.sh "$rootfs"
"$berth" image build "$rootfs" --tag berth.local/busybox:latest --cmd /bin/sh
"$berth" image ls

step "berth run --rm: an isolated, hardened container"
"$berth" run --rm --hostname demo --memory 64Mi --pids-limit 64 berth.local/busybox:latest \
  sh -c 'echo "hello from $(hostname), I am PID $$"; ps; grep -E "CapEff|NoNewPrivs" /proc/self/status'

step "berth run -d: a web server in the background (host network, port 18080)"
"$berth" container rm -f demo-web >/dev/null 2>&1 || true
"$berth" run -d --name demo-web --network host berth.local/busybox:latest \
  httpd -f -v -p 127.0.0.1:18080 -h /var/www
for _ in $(seq 50); do
  if out=$(busybox wget -q -O - http://127.0.0.1:18080/ 2>/dev/null); then break; fi
  sleep 0.1
done
echo "GET http://127.0.0.1:18080/ -> ${out:-<no answer>}"
"$berth" container ls
step "berth container logs demo-web"
"$berth" container logs --timestamps demo-web
step "berth container stop / rm"
"$berth" container stop --time 2 demo-web
"$berth" container rm demo-web
"$berth" container ls
