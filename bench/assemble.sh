#!/usr/bin/env bash
# Assembly benchmark: the stick image from a root tree, kernel and initrd, with
#   1. aquarium-image assemble (libparted + GPTEditor, mkfs.vfat --offset + mtools, mke2fs -d -E offset=, bmap, SHA256SUMS),
#   2. a shell baseline doing the same job the classic way: sfdisk on the image, each filesystem built in its own file
#      (mkfs.vfat + mcopy -s, mke2fs -d), then dd conv=sparse,notrunc into place (no bmap, no checksums).
# Prints wall time (median of --runs runs per side, default 5, the sides alternating and the page cache dropped before
# each run; any failed run fails the benchmark), apparent and allocated size as a table. Needs sfdisk, mkfs.vfat,
# mtools, mke2fs.
# Usage: bench/assemble.sh [--tool PATH] [--root TREE] [--runs N]
#   --root: a real root tree (e.g. `aquarium-image build --keep-root` leaves OUT/.rootfs-NAME); default: synthetic.
set -euo pipefail

tool=""
root=""
runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2 ;;
    --root) root="$(realpath "$2")"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "usage: $0 [--tool PATH-TO-aquarium-image] [--root TREE] [--runs N]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -n "$tool" ] || tool=$(find_tool aquarium-image) || true
[ -n "$tool" ] && [ -x "$tool" ] || { echo "aquarium-image not built: run 'swift build -c release' or pass --tool PATH" >&2; exit 2; }
for program in sfdisk mkfs.vfat mcopy mmd mke2fs dd du; do
  command -v "$program" >/dev/null || { echo "missing program: $program" >&2; exit 2; }
done

work="$(mktemp -d /tmp/aquarium-bench-assemble-XXXXXX)"
trap 'rm -rf "$work"' EXIT
[ "$runs" -ge 1 ] 2>/dev/null || { echo "--runs must be a positive number" >&2; exit 2; }
BENCH_LOG="$work/bench.log"

if [ -z "$root" ]; then
  root="$work/root"
  mkdir -p "$root/boot" "$root/usr/lib/systemd/boot/efi" "$root/usr/share/data"
  head -c 8M /dev/urandom > "$root/boot/vmlinuz-6.1.0-bench"
  head -c 40M /dev/urandom > "$root/boot/initrd.img-6.1.0-bench"
  head -c 128K /dev/urandom > "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
  for i in $(seq 0 199); do head -c 1M /dev/urandom > "$root/usr/share/data/blob-$i"; done
  for d in $(seq 0 19); do mkdir -p "$root/usr/share/doc/d$d"; for i in $(seq 0 499); do echo "$d $i" > "$root/usr/share/doc/d$d/f$i"; done; done
fi
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
efi="$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
[ -f "$efi" ] || efi=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
export SOURCE_DATE_EPOCH=1700000000

ours() {
  "$tool" assemble --quiet --root "$root" --kernel "$kernel" --initrd "$initrd" --bootloader "$efi" \
    --output "$work/ours" --name bench
}

baseline() {
  local out="$work/base" mib=$((1 << 20))
  rm -rf "$out"; mkdir -p "$out/esp/EFI/BOOT" "$out/esp/loader/entries" "$out/esp/aquarium"
  cp "$efi" "$out/esp/EFI/BOOT/BOOTX64.EFI"; cp "$kernel" "$out/esp/aquarium/vmlinuz"; cp "$initrd" "$out/esp/aquarium/initrd.img"
  printf 'default aquarium.conf\ntimeout 0\n' > "$out/esp/loader/loader.conf"
  printf 'title Aquarium\nlinux /aquarium/vmlinuz\ninitrd /aquarium/initrd.img\noptions root=PARTLABEL=AQUA-ROOT ro\n' \
    > "$out/esp/loader/entries/aquarium.conf"
  local esp=256 seed=64 rootmib
  rootmib=$(( $(du -s -B1M --apparent-size "$root" | cut -f1) * 12 / 10 + 256 ))
  local total=$(( 1 + esp + rootmib + seed + 1 ))
  truncate -s "${total}M" "$out/bench.raw"
  sfdisk -q "$out/bench.raw" <<TABLE
label: gpt
start=2048, size=$(( esp * 2048 )), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=AQUA-ESP
size=$(( rootmib * 2048 )), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=AQUA-ROOT
size=$(( seed * 2048 )), type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=AQUASEED
TABLE
  truncate -s "${esp}M" "$out/esp.fat"; mkfs.vfat -F 32 -s 1 -n AQUA-ESP "$out/esp.fat" >/dev/null
  MTOOLS_SKIP_CHECK=1 mcopy -s -i "$out/esp.fat" "$out/esp/EFI" "$out/esp/loader" "$out/esp/aquarium" ::/
  truncate -s "${rootmib}M" "$out/root.ext4"; mke2fs -q -t ext4 -d "$root" -L aquarium-root "$out/root.ext4"
  truncate -s "${seed}M" "$out/seed.fat"; mkfs.vfat -n AQUASEED "$out/seed.fat" >/dev/null
  echo "Put seed.yaml here." > "$out/README.TXT"; MTOOLS_SKIP_CHECK=1 mcopy -i "$out/seed.fat" "$out/README.TXT" ::/
  dd if="$out/esp.fat" of="$out/bench.raw" bs=1M seek=1 conv=sparse,notrunc status=none
  dd if="$out/root.ext4" of="$out/bench.raw" bs=1M seek=$(( 1 + esp )) conv=sparse,notrunc status=none
  dd if="$out/seed.fat" of="$out/bench.raw" bs=1M seek=$(( 1 + esp + rootmib )) conv=sparse,notrunc status=none
  rm -f "$out/esp.fat" "$out/root.ext4" "$out/seed.fat"
}

ours_samples=()
base_samples=()
ours_run() { drop_caches; run_timed ours_samples ours; }
base_run() { drop_caches; run_timed base_samples baseline; }

echo "root tree: $root ($(du -sh --apparent-size "$root" | cut -f1), $(find "$root" | wc -l) entries); $runs runs per side, alternating" >&2
alternate "$runs" ours_run base_run
row() {
  awk -v l="$1" -v ms="$2" -v a="$(stat -c %s "$3")" -v b="$(( $(stat -c %b "$3") * 512 ))" \
    'BEGIN { printf "%-58s %8.2f %10.0f %10.0f\n", l, ms / 1000, a / 1048576, b / 1048576 }'
}
printf '%-58s %8s %10s %10s\n' "method (median of $runs runs, page cache dropped before each)" "wall s" "MiB" "alloc MiB"
row "aquarium-image assemble (incl. bmap + SHA256SUMS)" "$(median "${ours_samples[@]}")" "$work/ours/bench.raw"
row "shell: sfdisk + mkfs.vfat + mcopy + mke2fs -d + dd" "$(median "${base_samples[@]}")" "$work/base/bench.raw"
echo "samples (ms): aquarium-image ${ours_samples[*]}; shell ${base_samples[*]}" >&2
