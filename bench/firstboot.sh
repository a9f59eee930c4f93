#!/usr/bin/env bash
# FirstBoot benchmark: prints a table comparing
#   1. `aquarium-firstboot inventory --json` vs `lsblk -J -O` vs `lshw -json -class disk` with 32 extra loop devices;
#   2. `aquarium-firstboot apply` on a 100 GiB sparse loop disk vs a shell baseline doing the same job with
#      sfdisk + mkfs.xfs + mount.
# Needs root, losetup, sfdisk, mkfs.xfs, lsblk, lshw. Everything it creates (loop devices, files, mounts) is removed
# on exit. Usage: bench/firstboot.sh [--tool PATH] [--runs N]
set -euo pipefail

tool=""
runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "usage: $0 [--tool PATH-TO-aquarium-firstboot] [--runs N]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -n "$tool" ] || tool=$(find_tool aquarium-firstboot) || true
if [ -z "$tool" ] || [ ! -x "$tool" ]; then
  echo "aquarium-firstboot not built: run 'swift build -c release' or pass --tool PATH" >&2
  exit 2
fi
for program in losetup sfdisk mkfs.xfs lsblk lshw mount umount; do
  command -v "$program" >/dev/null || { echo "missing program: $program" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (loop devices, mounts)" >&2; exit 2; }

work="$(mktemp -d /tmp/aquarium-bench-XXXXXX)"
loops=()
cleanup() {
  set +e
  for point in "$work/root/etc" "$work/root/var/log" "$work/root/var/lib/ceph" "$work/root/var/lib/aquarium" \
               "$work/root/var/lib/aquarium-system" "$work/baseline-mnt"; do
    mountpoint -q "$point" 2>/dev/null && umount "$point"
  done
  for loop in "${loops[@]}"; do losetup -d "$loop" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
# median of the arguments (milliseconds)
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# time_cmd VAR command...: runs the command $runs times, sets VAR to the median in ms
time_cmd() {
  local var="$1"; shift
  local samples=()
  for _ in $(seq "$runs"); do
    local start end
    start=$(now_ns)
    "$@" >/dev/null 2>&1
    end=$(now_ns)
    samples+=($(( (end - start) / 1000000 )))
  done
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
time_cmd t_inv "$tool" inventory --json
time_cmd t_lsblk lsblk -J -O
time_cmd t_lshw lshw -json -class disk

# --- 2. apply on a 100 GiB sparse disk vs a shell baseline ------------------------------------------------------
cat >"$work/seed.yaml" <<'EOF'
version: 1
host:
  hostname: bench-node
cluster:
  role: bootstrap
EOF
truncate -s 100G "$work/big-a.img" "$work/big-b.img"
big_a=$(losetup --find --show "$work/big-a.img"); loops+=("$big_a")
big_b=$(losetup --find --show "$work/big-b.img"); loops+=("$big_b")
mkdir -p "$work/root/etc" "$work/baseline-mnt"
start=$(now_ns)
"$tool" apply --seed "$work/seed.yaml" --root "$work/root" --yes --no-handoff --only-device "${big_a#/dev/}" \
  >"$work/apply.out" 2>&1 || { cat "$work/apply.out" >&2; exit 1; }
t_apply=$(( ($(now_ns) - start) / 1000000 ))
# Fast path: everything unmounted ("reboot"), then apply again (mount only).
for point in etc var/log var/lib/ceph var/lib/aquarium var/lib/aquarium-system; do umount "$work/root/$point"; done
start=$(now_ns)
"$tool" apply --seed "$work/seed.yaml" --root "$work/root" --no-handoff --only-device "${big_a#/dev/}" >/dev/null 2>&1
t_reboot=$(( ($(now_ns) - start) / 1000000 ))

start=$(now_ns)
printf 'label: gpt\nstart=2048, type=4D21B016-B534-45C2-A9FB-5C16E091FD2D, name=aquarium-state\n' | sfdisk -q "$big_b" >/dev/null
partx --add "$big_b" 2>/dev/null || true
mkfs.xfs -q -f -L aquarium "${big_b}p1"
mount "${big_b}p1" "$work/baseline-mnt"
t_base=$(( ($(now_ns) - start) / 1000000 ))

printf '\n%-58s %10s %8s\n' "task" "ms" "disks"
printf '%-58s %10s %8s\n' "----" "--" "-----"
printf '%-58s %10s %8s\n' "aquarium-firstboot inventory --json (median of $runs)" "$t_inv" "$count_inv"
printf '%-58s %10s %8s\n' "lsblk -J -O (median of $runs)" "$t_lsblk" "$count_lsblk"
printf '%-58s %10s %8s\n' "lshw -json -class disk (median of $runs)" "$t_lshw" "$count_lshw"
printf '%-58s %10s %8s\n' "aquarium-firstboot apply, 100 GiB sparse loop (first boot)" "$t_apply" "1"
printf '%-58s %10s %8s\n' "aquarium-firstboot apply, same disk (later boot, mount only)" "$t_reboot" "1"
printf '%-58s %10s %8s\n' "baseline: sfdisk + mkfs.xfs + mount, 100 GiB sparse loop" "$t_base" "1"
echo
echo "disks: what each tool lists as disks (lsblk: top-level block devices incl. zram/ram; lshw lists no loop devices)."
echo "apply does more than the baseline: plan (inventory + libblkid probes), step journal with fsyncs, GPT identities,"
echo "state layout (binds, /etc overlay, units) and the node record."
