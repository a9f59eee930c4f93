#!/usr/bin/env bash
# Build benchmark: `aquarium-image build --profile minimal` from a warm cache (the root filesystem archive and the
# initramfs already cached: one build first fills them), the root tree in memory (a tmpfs, the default when it fits)
# against the same build with the tree in the output directory on disk (`--root-on-disk`, what every build did
# before), alternating, SOURCE_DATE_EPOCH fixed. Prints the median wall time of each side (the whole command: the
# tree's removal included) and their ratio, against the goal of 15 s. Needs root and the node tools.
# Usage: bench/build.sh [--tool PATH-TO-aquarium-image] [--node-tools DIR] [--runs N] [--cache DIR]
set -euo pipefail

tool=""
node_tools=""
runs=5
cache="${AQUARIUM_IMAGE_CACHE:-/var/cache/aquarium-image}"
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2 ;;
    --node-tools) node_tools="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    *) echo "usage: $0 [--tool PATH-TO-aquarium-image] [--node-tools DIR] [--runs N] [--cache DIR]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$runs" -ge 1 ] 2>/dev/null || { echo "--runs must be a positive number" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
[ -n "$node_tools" ] || node_tools="$(./scripts/build-node-tools)"
[ -n "$tool" ] || tool="$node_tools/aquarium-image"

work="$(mktemp -d /var/tmp/aquarium-bench-build-XXXXXX)"
trap 'rm -rf "$work"' EXIT
export BENCH_LOG="$work/log"
export SOURCE_DATE_EPOCH=1700000000
build() {
  "$tool" build --description image --profile minimal --cache "$cache" --output "$work/out" \
    --tool "$node_tools/aquarium-firstboot" --tool "$node_tools/aquarium-provision" --tool "$node_tools/aquarium-image" "$@"
  rm -rf "$work/out"
}
echo "warming the cache (one build)..." >&2
build >>"$BENCH_LOG" 2>&1
memory=(); disk=()
memory_side() { run_timed memory build; }
disk_side() { run_timed disk build --root-on-disk; }
alternate "$runs" memory_side disk_side

m=$(median "${memory[@]}"); d=$(median "${disk[@]}")
printf '%-46s %10s\n' "minimal image from a warm cache (median of $runs)" "seconds"
printf '%-46s %10.1f\n' "root tree in memory (tmpfs, the default)" "$(awk -v m="$m" 'BEGIN {print m / 1000}')"
printf '%-46s %10.1f\n' "root tree on disk (--root-on-disk, as before)" "$(awk -v d="$d" 'BEGIN {print d / 1000}')"
printf '%-46s %10.2f\n' "ratio memory / disk" "$(awk -v m="$m" -v d="$d" 'BEGIN {print m / d}')"
printf '%-46s %10s\n' "goal" "15.0"
echo "samples (ms): memory ${memory[*]}; disk ${disk[*]}" >&2
