#!/usr/bin/env bash
# Flash benchmark: writes the same image to the same loop device with
#   1. aquarium-image flash (mapped ranges only, then reads every range back and checks its SHA-256),
#   2. bmaptool copy (mapped ranges only, checks the image data while copying, no read-back of the device),
#   3. dd bs=4M conv=fsync (everything, no check),
# and prints wall time (median of --runs runs each, default 5, the three alternating in rotated order) and bytes
# written to the device (from /sys/block/LOOP/stat) as a table, with the ratios against bmaptool and dd.
# Between runs the loop device is discarded (blkdiscard) and the page cache dropped; any failed run fails the benchmark.
# Needs root, losetup, bmaptool, blkdiscard. Everything it creates is removed on exit.
# Usage: bench/flash.sh [--tool PATH] [--image NAME.raw] [--runs N]   (default: a 2 GiB image with ~400 MiB of data,
#        assembled from a synthetic root tree; pass a real build's NAME.raw with --image)
set -euo pipefail

tool=""
image=""
runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2 ;;
    --image) image="$(realpath "$2")"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "usage: $0 [--tool PATH-TO-aquarium-image] [--image NAME.raw] [--runs N]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -n "$tool" ] || tool=$(find_tool aquarium-image) || true
[ -n "$tool" ] && [ -x "$tool" ] || { echo "aquarium-image not built: run 'swift build -c release' or pass --tool PATH" >&2; exit 2; }
for program in losetup bmaptool blkdiscard dd mkfs.vfat mke2fs mcopy; do
  command -v "$program" >/dev/null || { echo "missing program: $program" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (loop devices)" >&2; exit 2; }

work="$(mktemp -d /tmp/aquarium-bench-flash-XXXXXX)"
loop=""
cleanup() {
  set +e
  [ -n "$loop" ] && losetup -d "$loop"
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$image" ]; then
  echo "assembling a test image from a synthetic root tree..." >&2
  root="$work/root"
  mkdir -p "$root/boot" "$root/usr/lib/systemd/boot/efi" "$root/usr/share/data"
  head -c 8M /dev/urandom > "$root/boot/vmlinuz"
  head -c 40M /dev/urandom > "$root/boot/initrd.img"
  head -c 128K /dev/urandom > "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
  for i in $(seq 0 299); do head -c 1M /dev/urandom > "$root/usr/share/data/blob-$i"; done
  for i in $(seq 0 1999); do echo "file $i" > "$root/usr/share/data/small-$i"; done
  "$tool" assemble --quiet --root "$root" --bootloader "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" \
    --output "$work/out" --name bench --root-headroom-mib 1024 >/dev/null
  image="$work/out/bench.raw"
fi
[ -f "$image.bmap" ] || "$tool" bmap "$image"
size=$(stat -c %s "$image")
truncate -s $(( size + (64 << 20) )) "$work/device.img"
loop=$(losetup --find --show "$work/device.img")
name=$(basename "$loop")
# Loop devices do not count I/O unless asked to.
echo 1 > "/sys/block/$name/queue/iostats"

written_bytes() { echo $(( $(awk '{print $7}' "/sys/block/$name/stat") * 512 )); }
reset_device() { blkdiscard -f "$loop"; sync; echo 3 > /proc/sys/vm/drop_caches; }

[ "$runs" -ge 1 ] 2>/dev/null || { echo "--runs must be a positive number" >&2; exit 2; }
declare -A samples=() written=()
# sample SIDE COMMAND...: one timed run on a discarded device with a cold page cache.
sample() {
  local side="$1"; shift
  reset_device
  local before after start end
  before=$(written_bytes)
  start=$(date +%s%N)
  "$@" >/dev/null 2>"$work/stderr" || { echo "$side failed:" >&2; cat "$work/stderr" >&2; exit 1; }
  end=$(date +%s%N)
  after=$(written_bytes)
  samples[$side]+="$(( (end - start) / 1000000 )) "
  written[$side]=$(( after - before ))
}
side_command() {
  case "$1" in
    ours) echo "$tool flash --quiet --yes-non-removable $image $loop" ;;
    bmaptool) echo "bmaptool copy --bmap $image.bmap $image $loop" ;;
    dd) echo "dd if=$image of=$loop bs=4M conv=fsync status=none" ;;
  esac
}
sides=(ours bmaptool dd)
for i in $(seq 1 "$runs"); do
  for k in 0 1 2; do
    side=${sides[$(( (k + i) % 3 ))]}
    # shellcheck disable=SC2046 # paths without spaces (mktemp, realpath of the image)
    sample "$side" $(side_command "$side")
  done
done
# The image the device now holds is dd's or bmaptool's; flash once more and check the result with verify.
sample check "$tool" flash --quiet --yes-non-removable "$image" "$loop"
"$tool" verify --quiet "$image" "$loop" >/dev/null || { echo "verify after flash failed" >&2; exit 1; }

mapped=$(grep -o '<MappedBlocksCount> [0-9]* ' "$image.bmap" | tr -dc 0-9)
block=$(grep -o '<BlockSize> [0-9]* ' "$image.bmap" | tr -dc 0-9)
declare -A ms=()
for side in "${sides[@]}"; do
  # shellcheck disable=SC2086
  ms[$side]=$(median ${samples[$side]})
done
label() {
  case "$1" in
    ours) echo "aquarium-image flash (verify included)" ;;
    bmaptool) echo "bmaptool copy (no device read-back)" ;;
    dd) echo "dd bs=4M conv=fsync (everything, no check)" ;;
  esac
}
echo
echo "image: $image ($(( size >> 20 )) MiB apparent, $(( mapped * block >> 20 )) MiB mapped); device: $loop (loop on a sparse file)"
printf '%-44s %9s %13s %9s\n' "method (median of $runs)" "wall s" "bytes written" "MiB/s"
for side in "${sides[@]}"; do
  awk -v l="$(label "$side")" -v ms="${ms[$side]}" -v b="${written[$side]}" \
    'BEGIN { printf "%-44s %9.2f %13.0f %9.1f\n", l, ms / 1000, b, (ms > 0 ? b / 1048576 / (ms / 1000) : 0) }'
done
echo
awk -v o="${ms[ours]}" -v b="${ms[bmaptool]}" -v d="${ms[dd]}" \
  'BEGIN { printf "flash / bmaptool: %.2fx (goal <= 1.0x); dd / flash: %.2fx (goal >= 3x)\n", o / b, d / o }'
echo "samples (ms): ours ${samples[ours]}; bmaptool ${samples[bmaptool]}; dd ${samples[dd]}" >&2
