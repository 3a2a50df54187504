#!/usr/bin/env bash
# Container start-to-exit latency: `berth run --rm IMAGE /bin/true` against `crun run` and
# `runc run` on the same busybox root filesystem, side by side in one hyperfine run.
# Prints each median and berth's ratio to each anchor. Needs root.
#
#   bash bench/startup.sh [RUNS]
#
# BERTH_ALT="name=/path/to/berth ..." adds other berth builds to the same hyperfine run, so
# that alternatives are compared side by side rather than across runs. INTERLEAVED=1 also
# times them interleaved (bench/interleave.py), steadier than hyperfine on a loaded machine.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
. scripts/lib.sh
runs=${1:-100}

apt_install busybox-static crun runc hyperfine jq
cargo build --release --locked -p berth
berth=$(berth_bin release)

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# crun refuses a hybrid host whose v2 mount holds only hugetlb; give it a v1 hugetlb hierarchy.
if [ ! -d /sys/fs/cgroup/hugetlb ] && [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

bash scripts/busybox-rootfs.sh "$work/bundle/rootfs" >/dev/null
(cd "$work/bundle" && runc spec && jq '.process.terminal=false | .process.args=["/bin/true"]' \
  config.json >config.tmp && mv config.tmp config.json)
export BERTH_ROOT=$work/root BERTH_RUN_DIR=$work/run
"$berth" image build "$work/bundle/rootfs" --tag bench/busybox:latest >/dev/null
"$berth" run --rm bench/busybox:latest /bin/true # warm the page cache and check it works

alt=()
for entry in ${BERTH_ALT:-}; do
  alt+=(-n "${entry%%=*}" "${entry#*=} run --rm bench/busybox:latest /bin/true")
done

# Every command starts from the same filesystem: an ext4 without a journal (this VM's) skips
# inodes freed in the last 5 s (300 s while their table block is dirty) at every allocation,
# so one command's deletions would slow the next one's creations. `sync` cleans the blocks and
# the pause ages the deletions out; it also lets the previous command's asynchronous teardown
# (network namespaces, cgroups) finish.
settle="sh -c 'sync; sleep 6'"
cd "$work/bundle"
hyperfine -N --warmup 10 --runs "$runs" --setup "$settle" --export-json "$work/result.json" \
  -n berth "$berth run --rm bench/busybox:latest /bin/true" "${alt[@]}" \
  -n crun "crun run bench-crun-$$" \
  -n runc "runc run bench-runc-$$"

jq -r '
  (.results | map({(.command): (.median * 1000)}) | add) as $m
  | "medians (ms): " + (.results | map("\(.command) \(.median * 100000 | round / 100)") | join("  ")),
    "berth/crun = \($m.berth / $m.crun * 100 | round / 100)   berth/runc = \($m.berth / $m.runc * 100 | round / 100)"
' "$work/result.json"

if [ -n "${INTERLEAVED:-}" ]; then
  echo "== interleaved"
  inter=("berth=$berth run --rm bench/busybox:latest /bin/true")
  for entry in ${BERTH_ALT:-}; do
    inter+=("${entry%%=*}=${entry#*=} run --rm bench/busybox:latest /bin/true")
  done
  python3 "$repo/bench/interleave.py" "$runs" "${inter[@]}" \
    "crun=crun run bench-crun-$$" "runc=runc run bench-runc-$$"
fi
