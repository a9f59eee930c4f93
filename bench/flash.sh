#!/usr/bin/env bash
# Flash benchmark: writes the same image to the same loop device with
#   1. aquarium-image flash (mapped ranges only, then reads every range back and checks its SHA-256),
#   2. bmaptool copy (mapped ranges only, checks the image data while copying, no read-back of the device),
#   3. dd bs=4M conv=fsync (everything, no check),
# and prints wall time and bytes written to the device (from /sys/block/LOOP/stat) as a table.
# Between runs the loop device is discarded (blkdiscard) and the page cache dropped.
# Needs root, losetup, bmaptool, blkdiscard. Everything it creates is removed on exit.
# Usage: bench/flash.sh [--tool PATH] [--image NAME.raw]   (default: a 2 GiB image with ~400 MiB of data,
#        assembled from a synthetic root tree; pass a real build's NAME.raw with --image)
set -euo pipefail

tool=""
image=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2 ;;
    --image) image="$(realpath "$2")"; shift 2 ;;
    *) echo "usage: $0 [--tool PATH-TO-aquarium-image] [--image NAME.raw]" >&2; exit 2 ;;
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

rows=()
run() {
  local label="$1"; shift
  reset_device
  local before after start end
  before=$(written_bytes)
  start=$(date +%s%N)
  "$@" >/dev/null 2>"$work/stderr" || { echo "$label failed:" >&2; cat "$work/stderr" >&2; exit 1; }
  end=$(date +%s%N)
  after=$(written_bytes)
  local ms=$(( (end - start) / 1000000 )) bytes=$(( after - before ))
  rows+=("$(awk -v l="$label" -v ms="$ms" -v b="$bytes" \
            'BEGIN { printf "%-44s %9.2f %13.0f %9.1f", l, ms / 1000, b, (ms > 0 ? b / 1048576 / (ms / 1000) : 0) }')")
}

run "aquarium-image flash (+ read-back verify)" "$tool" flash --quiet --yes-non-removable "$image" "$loop"
run "bmaptool copy" bmaptool copy --bmap "$image.bmap" "$image" "$loop"
run "dd bs=4M conv=fsync" dd if="$image" of="$loop" bs=4M conv=fsync status=none

mapped=$(grep -o '<MappedBlocksCount> [0-9]* ' "$image.bmap" | tr -dc 0-9)
block=$(grep -o '<BlockSize> [0-9]* ' "$image.bmap" | tr -dc 0-9)
echo
echo "image: $image ($(( size >> 20 )) MiB apparent, $(( mapped * block >> 20 )) MiB mapped); device: $loop (loop on a sparse file)"
printf '%-44s %9s %13s %9s\n' "method" "wall s" "bytes written" "MiB/s"
printf '%s\n' "${rows[@]}"
