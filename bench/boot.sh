#!/usr/bin/env bash
# Boot benchmark: boots a stick image in QEMU (TCG, UEFI, the stick as USB storage, an SSD and two HDDs, as
# `scripts/demo` does) with a sample seed, a fresh copy of the stick and blank disks each run, and stops at FirstBoot's
# handoff line. Prints, as the median of --runs runs (default 3), the wall time from QEMU's start to the kernel
# ("Linux version"), to systemd ("running in system mode"), to FirstBoot's first line and to the handoff
# ("]: handoff: "), against the goal of 20 s to the handoff. Any run without a handoff fails the benchmark.
# With --baseline OTHER.raw (an image of an earlier commit), the two images boot alternately, --runs times each, so a
# machine that gets slower or faster during the run weighs on both alike; the table has a column for each.
# Needs root (nothing else than QEMU, OVMF, mtools, sfdisk). Everything it creates is removed on exit.
# Usage: bench/boot.sh [--tool PATH] [--image NAME.raw] [--baseline OTHER.raw] [--runs N] [--seed FILE] [--keep-logs DIR]
#   --image: default: build the `minimal` profile of image/ with the node tools (scripts/build-node-tools).
set -euo pipefail

tool=""
image=""
baseline=""
runs=3
seed="docs/examples/demo-node.yaml"
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2 ;;
    --image) image="$(realpath "$2")"; shift 2 ;;
    --baseline) baseline="$(realpath "$2")"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --seed) seed="$(realpath "$2")"; shift 2 ;;
    --keep-logs) keep="$(realpath -m "$2")"; shift 2 ;;
    *) echo "usage: $0 [--tool PATH-TO-aquarium-image] [--image NAME.raw] [--baseline OTHER.raw] [--runs N] [--seed FILE] [--keep-logs DIR]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$runs" -ge 1 ] 2>/dev/null || { echo "--runs must be a positive number" >&2; exit 2; }
for program in qemu-system-x86_64 sfdisk mtype mcopy python3; do
  command -v "$program" >/dev/null || { echo "missing program: $program" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }

work="$(mktemp -d /var/tmp/aquarium-bench-boot-XXXXXX)"
trap 'rm -rf "$work"' EXIT
if [ -z "$tool" ]; then
  tool="$(./scripts/build-node-tools)/aquarium-image"
fi
if [ -z "$image" ]; then
  echo "building the minimal image (cache: ${AQUARIUM_IMAGE_CACHE:-/var/cache/aquarium-image})..." >&2
  "$tool" build --description image --profile minimal --output "$work/out" \
    --cache "${AQUARIUM_IMAGE_CACHE:-/var/cache/aquarium-image}" --quiet >&2
  image=$(ls "$work"/out/*.raw | head -n 1)
fi
[ -f "$image" ] || { echo "no image at $image" >&2; exit 2; }
[ -z "$baseline" ] || [ -f "$baseline" ] || { echo "no baseline image at $baseline" >&2; exit 2; }

offset() { sfdisk --json "$1" | python3 -c 'import json,sys; print(next(p["start"] * 512 for p in json.load(sys.stdin)["partitiontable"]["partitions"] if p["type"] == sys.argv[1]))' "$2"; }
ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B

# watch LOG PID: prints "marker seconds" for each marker, the seconds since this call at which it first appeared in LOG,
# polling until the process PID ends.
watch() {
  python3 - "$1" "$2" <<'PY'
import os, sys, time
log, pid = sys.argv[1], int(sys.argv[2])
markers = {"kernel": "Linux version", "systemd": "running in system mode", "firstboot": "aquarium-firstboot[",
           "handoff": "]: handoff: "}
seen, start = {}, time.monotonic()
def alive():
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
while True:
    running = alive()
    try:
        text = open(log, "rb").read().decode("utf-8", "replace")
    except FileNotFoundError:
        text = ""
    now = time.monotonic() - start
    for name, marker in markers.items():
        if name not in seen and marker in text:
            seen[name] = now
    if not running or len(seen) == len(markers):
        break
    time.sleep(0.1)
for name in markers:
    print(name, "%.1f" % seen[name] if name in seen else "-")
PY
}

declare -A samples=()
# boot_once LABEL IMAGE N: one boot of a fresh copy of IMAGE; adds its times to samples[LABEL:POINT].
boot_once() {
  local label=$1 source=$2 i=$3 run="$work/run-$1-$3" name seconds
  mkdir -p "$run"
  cp --sparse=always "$source" "$run/stick.raw"
  truncate -s 12G "$run/ssd.raw"; truncate -s 20G "$run/hdd1.raw"; truncate -s 20G "$run/hdd2.raw"
  "$tool" seed inject "$run/stick.raw" "$seed" >/dev/null
  "$tool" boot "$run/stick.raw" --disk "$run/ssd.raw:AQ-SSD-0001:ssd" --disk "$run/hdd1.raw:AQ-HDD-0001:hdd" \
    --disk "$run/hdd2.raw:AQ-HDD-0002:hdd" --system-serial AQ-BENCH-0001 --console-log "$run/console.log" \
    --stop-on "]: handoff: " --timeout 600 >"$run/boot.out" 2>&1 &
  local pid=$!
  watch "$run/console.log" "$pid" >"$run/times"
  wait "$pid" || true
  if ! grep -q '^handoff [0-9]' "$run/times"; then
    echo "$label run $i: no handoff; console tail:" >&2
    tail -c 3000 "$run/console.log" >&2 || true
    exit 1
  fi
  while read -r name seconds; do samples[$label:$name]+="$seconds "; done <"$run/times"
  if [ -n "$keep" ]; then mkdir -p "$keep"; cp "$run/console.log" "$keep/$label-boot-$i.console.log"; fi
  rm -f "$run"/*.raw
  echo "$label run $i: $(tr '\n' ' ' <"$run/times")" >&2
}

labels=(image)
[ -z "$baseline" ] || labels=(baseline image)
for i in $(seq 1 "$runs"); do
  [ -z "$baseline" ] || boot_once baseline "$baseline" "$i"
  boot_once image "$image" "$i"
done

echo
echo "image: $image${baseline:+; baseline: $baseline}"
echo "$(nproc) cores, QEMU TCG; median of $runs boots each, seconds from QEMU's start"
if [ -n "$baseline" ]; then printf '%-44s %9s %9s\n' "point" "baseline" "image"; else printf '%-44s %8s\n' "point" "s"; fi
for name in kernel systemd firstboot handoff; do
  label_text="$(case $name in kernel) echo "kernel starts (firmware + boot loader)";;
    systemd) echo "systemd starts (kernel + initramfs)";; firstboot) echo "FirstBoot's first line";;
    handoff) echo "FirstBoot hands off";; esac)"
  # shellcheck disable=SC2086
  if [ -n "$baseline" ]; then
    printf '%-44s %9s %9s\n' "$label_text" "$(median ${samples[baseline:$name]})" "$(median ${samples[image:$name]})"
  else
    printf '%-44s %8s\n' "$label_text" "$(median ${samples[image:$name]})"
  fi
done
# shellcheck disable=SC2086
awk -v h="$(median ${samples[image:handoff]})" 'BEGIN { printf "\nhandoff / goal (20 s): %.2fx\n", h / 20 }'
if [ -n "$baseline" ]; then
  # shellcheck disable=SC2086
  awk -v b="$(median ${samples[baseline:handoff]})" -v h="$(median ${samples[image:handoff]})" \
    'BEGIN { printf "image / baseline (handoff): %.2fx\n", h / b }'
  echo "samples (s): baseline handoff ${samples[baseline:handoff]}" >&2
fi
echo "samples (s): image handoff ${samples[image:handoff]}" >&2
