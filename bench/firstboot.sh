#!/usr/bin/env bash
# FirstBoot benchmark: prints a table comparing
#   1. `aquarium-firstboot inventory --json` vs `lsblk -J -O` (the issue's baseline: it reads udev's database and sysfs,
#      never the disks) vs `wipefs` over the same disks (libblkid listing every signature, which the inventory does
#      too) vs `lshw -json -class disk`, with 32 extra loop devices; the ratios against lsblk and lsblk + wipefs;
#   2. `aquarium-firstboot apply` on a 100 GiB sparse loop disk vs a shell baseline doing the same job with
#      sfdisk + mkfs.xfs + mount.
# Needs root, losetup, sfdisk, mkfs.xfs, lsblk, lshw. Everything it creates (loop devices, files, mounts) is removed
# on exit. Usage: bench/firstboot.sh [--tool PATH] [--runs N] [--inventory-only]
# --runs: samples per task (default 5). apply and its baseline alternate which goes first, each sample on a fresh
# 100 GiB sparse loop disk with the page cache dropped before it; any failed run fails the benchmark.
set -euo pipefail

tool=""
runs=5
inventory_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --inventory-only) inventory_only=1; shift ;;
    *) echo "usage: $0 [--tool PATH-TO-aquarium-firstboot] [--runs N] [--inventory-only]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -n "$tool" ] || tool=$(find_tool aquarium-firstboot) || true
if [ -z "$tool" ] || [ ! -x "$tool" ]; then
  echo "aquarium-firstboot not built: run 'swift build -c release' or pass --tool PATH" >&2
  exit 2
fi
for program in losetup sfdisk mkfs.xfs lsblk lshw wipefs mount umount; do
  command -v "$program" >/dev/null || { echo "missing program: $program" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (loop devices, mounts)" >&2; exit 2; }

work="$(mktemp -d /tmp/aquarium-bench-XXXXXX)"
loops=()
# unmount_root ROOT: what apply mounted under ROOT (the state layout), innermost first.
unmount_root() {
  local point
  for point in etc var/log var/lib/ceph var/lib/aquarium var/lib/aquarium-system; do
    if mountpoint -q "$1/$point" 2>/dev/null; then umount "$1/$point"; fi
  done
}
cleanup() {
  set +e
  local root
  for root in "$work"/root-*; do [ -d "$root" ] && unmount_root "$root"; done
  for point in "$work"/baseline-mnt-*; do mountpoint -q "$point" 2>/dev/null && umount "$point"; done
  for loop in "${loops[@]}"; do losetup -d "$loop" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

[ "$runs" -ge 1 ] 2>/dev/null || { echo "--runs must be a positive number" >&2; exit 2; }
BENCH_LOG="$work/bench.log"
# time_cmd VAR command...: runs the command $runs times (any failure stops the benchmark), sets VAR to the median in ms
time_cmd() {
  local var="$1"; shift
  local samples=() i
  for i in $(seq "$runs"); do run_timed samples "$@"; done
  printf -v "$var" '%s' "$(median "${samples[@]}")"
}

# --- 1. inventory over 32 loop devices -------------------------------------------------------------------------
for i in $(seq 1 32); do
  file="$work/disk$i.img"
  truncate -s 512M "$file"
  case $((i % 4)) in
    1) mkfs.xfs -q -f -L "bench$i" "$file" ;;
    2) mkfs.ext4 -q -F -L "bench$i" "$file" ;;
    3) printf 'label: gpt\n,64M\n,\n' | sfdisk -q "$file" >/dev/null 2>&1 ;;
    *) ;;
  esac
  loops+=("$(losetup --find --show "$file")")
done
"$tool" inventory --json >"$work/inv.json" 2>/dev/null
lsblk -J -O >"$work/lsblk.json"
lshw -json -class disk >"$work/lshw.json" 2>/dev/null
count_inv=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["disks"]))' "$work/inv.json")
count_lsblk=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["blockdevices"]))' "$work/lsblk.json")
count_lshw=$(grep -c '"class" : "disk"' "$work/lshw.json" || true)
# wipefs_all: every signature on the 32 loop devices (wipefs without --all writes nothing; it refuses a mounted disk,
# so this machine's own disk is left out).
wipefs_all() { wipefs "${loops[@]}"; }
# Alternating, so no side always follows another: the inventory, lsblk, wipefs, lshw, then the same rotated.
inv_samples=(); lsblk_samples=(); wipefs_samples=(); lshw_samples=()
inventory_round() {
  local order=(inv lsblk wipefs lshw) k side
  for k in 0 1 2 3; do
    side=${order[$(( (k + $1) % 4 ))]}
    case "$side" in
      inv) run_timed inv_samples "$tool" inventory --json ;;
      lsblk) run_timed lsblk_samples lsblk -J -O ;;
      wipefs) run_timed wipefs_samples wipefs_all ;;
      lshw) run_timed lshw_samples lshw -json -class disk ;;
    esac
  done
}
for i in $(seq "$runs"); do inventory_round "$i"; done
t_inv=$(median "${inv_samples[@]}"); t_lsblk=$(median "${lsblk_samples[@]}")
t_wipefs=$(median "${wipefs_samples[@]}"); t_lshw=$(median "${lshw_samples[@]}")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
print_inventory() {
  printf '\n%-58s %10s %8s\n' "task" "ms" "disks"
  printf '%-58s %10s %8s\n' "----" "--" "-----"
  printf '%-58s %10s %8s\n' "aquarium-firstboot inventory --json (median of $runs)" "$t_inv" "$count_inv"
  printf '%-58s %10s %8s\n' "lsblk -J -O (median of $runs)" "$t_lsblk" "$count_lsblk"
  printf '%-58s %10s %8s\n' "wipefs, the 32 loop devices (median of $runs)" "$t_wipefs" "${#loops[@]}"
  printf '%-58s %10s %8s\n' "lshw -json -class disk (median of $runs)" "$t_lshw" "$count_lshw"
  echo
  echo "inventory / lsblk: $(ratio "$t_inv" "$t_lsblk")x; inventory / (lsblk + wipefs): $(ratio "$t_inv" $((t_lsblk + t_wipefs)))x"
  echo "samples (ms): inventory ${inv_samples[*]}; lsblk ${lsblk_samples[*]}; wipefs ${wipefs_samples[*]}" >&2
}
if [ "$inventory_only" = 1 ]; then
  print_inventory
  echo
  echo "disks: what each tool lists as disks (lsblk: top-level block devices incl. zram/ram; lshw lists no loop devices)."
  exit 0
fi

# --- 2. apply on a 100 GiB sparse disk vs a shell baseline ------------------------------------------------------
cat >"$work/seed.yaml" <<'EOF'
version: 1
host:
  hostname: bench-node
  requirements: {storage_disks: 0}   # one disk: the system disk only (a monitor-only bootstrap node)
cluster:
  role: bootstrap
EOF
# fresh_disk NAME: a new 100 GiB sparse loop device; prints its path.
fresh_disk() { truncate -s 100G "$work/$1.img"; losetup --find --show "$work/$1.img"; }
apply_samples=(); reboot_samples=(); base_samples=()
apply_side() {
  local disk root="$work/root-$1"
  disk=$(fresh_disk "apply-$1"); loops+=("$disk")
  mkdir -p "$root/etc"
  drop_caches
  run_timed apply_samples "$tool" apply --seed "$work/seed.yaml" --root "$root" --yes --no-handoff --only-device "${disk#/dev/}"
  # Fast path: everything unmounted ("reboot"), then apply again (mount only).
  unmount_root "$root"
  drop_caches
  run_timed reboot_samples "$tool" apply --seed "$work/seed.yaml" --root "$root" --no-handoff --only-device "${disk#/dev/}"
  unmount_root "$root"
}
baseline_apply() {
  local disk=$1 mnt=$2
  printf 'label: gpt\nstart=2048, type=4D21B016-B534-45C2-A9FB-5C16E091FD2D, name=aquarium-state\n' | sfdisk -q "$disk" >/dev/null
  partx --add "$disk" 2>/dev/null || true
  mkfs.xfs -q -f -L aquarium "${disk}p1"
  mount "${disk}p1" "$mnt"
}
baseline_side() {
  local disk mnt="$work/baseline-mnt-$1"
  disk=$(fresh_disk "base-$1"); loops+=("$disk")
  mkdir -p "$mnt"
  drop_caches
  run_timed base_samples baseline_apply "$disk" "$mnt"
  umount "$mnt"
}
alternate "$runs" apply_side baseline_side
t_apply=$(median "${apply_samples[@]}")
t_reboot=$(median "${reboot_samples[@]}")
t_base=$(median "${base_samples[@]}")

print_inventory
printf '\n%-58s %10s %8s\n' "task" "ms" "disks"
printf '%-58s %10s %8s\n' "----" "--" "-----"
printf '%-58s %10s %8s\n' "aquarium-firstboot apply, 100 GiB sparse loop (median of $runs)" "$t_apply" "1"
printf '%-58s %10s %8s\n' "aquarium-firstboot apply, same disk, mount only (median of $runs)" "$t_reboot" "1"
printf '%-58s %10s %8s\n' "baseline: sfdisk + mkfs.xfs + mount, 100 GiB (median of $runs)" "$t_base" "1"
echo
echo "disks: what each tool lists as disks (lsblk: top-level block devices incl. zram/ram; lshw lists no loop devices)."
echo "apply does more than the baseline: plan (inventory + libblkid probes), step journal with fsyncs, GPT identities,"
echo "state layout (binds, /etc overlay, units) and the node record."
echo "samples (ms): apply ${apply_samples[*]}; mount only ${reboot_samples[*]}; baseline ${base_samples[*]}" >&2
