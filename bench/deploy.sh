#!/usr/bin/env bash
# Deploy latency: time from `berth apply` of a Deployment with N replicas to all N pods Ready
# (`berth rollout status` returns), against `podman kube play` of the same pods in the same run,
# for N = 10 and 100. Also the daemon's RSS idle and with 100 pods. Needs root.
#
#   bash bench/deploy.sh [N...]
#
# podman `kube play` ignores `replicas`, so podman gets N Pod documents with the same container
# instead (what a compose user would write); it returns once the containers have started, with
# no readiness gate, which favours podman. berth's pods have no probes either, so Ready means
# started, as for podman.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
counts=("${@:-10 100}")
read -r -a counts <<<"${counts[*]}"

apt_install busybox-static podman skopeo jq
cargo build --release --locked -p berth
berth=$(berth_bin release)

work=$(mktemp -d /tmp/berth-bench-deploy.XXXXXX)
export BERTH_ROOT=$work/root BERTH_RUN_DIR=$work/run BERTH_SOCKET=$work/run/berth.sock
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
  podman pod rm -af >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# podman needs ulimits within this machine's hard limits (RLIMIT_NOFILE hard 20000).
export CONTAINERS_CONF=$work/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

bash scripts/busybox-rootfs.sh "$work/rootfs" >/dev/null
"$berth" image build "$work/rootfs" --tag berth.local/busybox:latest --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --cmd sleep --cmd 3600 >/dev/null
# The same image for podman, through an OCI archive of berth's image store.
skopeo copy --quiet "oci:$BERTH_ROOT/images:berth.local/busybox:latest" "oci-archive:$work/busybox.tar:berth.local/busybox:latest" 2>/dev/null ||
  skopeo copy --quiet "oci:$BERTH_ROOT/images" "oci-archive:$work/busybox.tar:berth.local/busybox:latest"
podman load --quiet -i "$work/busybox.tar" >/dev/null

"$berth" daemon >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do "$berth" get ns -o name >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2 / 1024 " MB"}' "/proc/$daemon/status"; }
echo "daemon RSS idle: $(rss)"

now() { date +%s.%N; }
for n in "${counts[@]}"; do
  cat >"$work/deploy-$n.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench-$n
spec:
  replicas: $n
  selector:
    matchLabels: {app: bench-$n}
  template:
    metadata:
      labels: {app: bench-$n}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: berth.local/busybox:latest
          command: ["sleep", "3600"]
EOF
  : >"$work/pods-$n.yaml"
  for i in $(seq "$n"); do
    cat >>"$work/pods-$n.yaml" <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: bench-$n-$i
spec:
  containers:
    - name: main
      image: berth.local/busybox:latest
      command: ["sleep", "3600"]
EOF
  done

  start=$(now)
  "$berth" apply -f "$work/deploy-$n.yaml" >/dev/null
  "$berth" rollout status "deployment/bench-$n" --timeout 10m >/dev/null
  berth_s=$(echo "$(now) - $start" | bc)
  echo "berth: $n replicas Ready in $berth_s s; daemon RSS with $n pods: $(rss)"

  start=$(now)
  podman --log-level error kube play --quiet "$work/pods-$n.yaml" >/dev/null
  podman_s=$(echo "$(now) - $start" | bc)

  printf 'replicas=%-4s berth %.2f s   podman kube play %.2f s   podman/berth %.1fx\n' \
    "$n" "$berth_s" "$podman_s" "$(echo "$podman_s / $berth_s" | bc -l)"

  "$berth" delete deployment "bench-$n" >/dev/null
  podman kube down "$work/pods-$n.yaml" >/dev/null 2>&1 || true
  for _ in $(seq 300); do
    [ "$("$berth" get pods -o name | wc -l)" = 0 ] && break
    sleep 0.2
  done
done
