#!/usr/bin/env bash
# Provisioner benchmark: seed -> HEALTH_OK (all OSDs up) for 1 and 2 bluestore OSDs on loop devices, comparing
#   1. `aquarium-provision run --launcher process` (mon, mgr, OSDs; a seed without services), then its no-op rerun;
#   2. a plain shell script doing the same manual bootstrap with the same Ceph tools (ceph-authtool, monmaptool,
#      ceph-mon --mkfs, ceph osd new, ceph-osd --mkfs) and the same single-node settings.
# Everything runs on 127.0.0.1 under temporary roots. Needs root, losetup and the Ceph packages (scripts/install-deps).
# Every daemon, loop device and file it creates is removed on exit. Usage: bench/provision.sh [--tool PATH] [--runs N]
# --runs: samples per side and OSD count (default 3: a sample takes 20-40 s); the two sides alternate which goes first,
# each side's daemons are stopped before the next sample, and any failed or timed-out run fails the benchmark.
# BENCH_HEALTH_TIMEOUT: seconds the baseline may wait for HEALTH_OK (default 600).
set -euo pipefail

tool=""
runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "usage: $0 [--tool PATH-TO-aquarium-provision] [--runs N]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. bench/lib.sh
[ "$runs" -ge 1 ] 2>/dev/null || { echo "--runs must be a positive number" >&2; exit 2; }
[ -n "$tool" ] || tool=$(find_tool aquarium-provision) || true
if [ -z "$tool" ] || [ ! -x "$tool" ]; then
  echo "aquarium-provision not built: run 'swift build' or pass --tool PATH" >&2
  exit 2
fi
for program in losetup ceph ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool wipefs; do
  command -v "$program" >/dev/null || { echo "missing $program: run scripts/install-deps" >&2; exit 2; }
done

work=$(mktemp -d /tmp/aquarium-bench-provision-XXXXXX)
loops=()
# stop_baseline ROOT: stops the daemons the baseline started under ROOT (only those: the command line must carry
# this root's ceph.conf).
stop_baseline() {
  local root=$1 pidfile pid
  for pidfile in "$root"/run/bench/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-c $root/etc/ceph/ceph.conf"; then
      kill "$pid"; for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
  done
}
cleanup() {
  set +e
  for root in "$work"/*/root; do
    [ -d "$root" ] || continue
    "$tool" stop --root "$root" >/dev/null 2>&1
    stop_baseline "$root"
  done
  for loop in "${loops[@]}"; do losetup -d "$loop"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench/provision.sh failed at line $LINENO" >&2' ERR

# A base port with 100 free ports on 127.0.0.1 from it.
free_base() {
  local base port busy
  for base in $(shuf -i 200-326 -n 60); do  # below the ephemeral port range
    base=$((base * 100)); busy=0
    for port in $(seq "$base" $((base + 99))); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then busy=1; break; fi
    done
    [ "$busy" -eq 0 ] && { echo "$base"; return; }
  done
  echo "no free port range" >&2; exit 1
}

# make_disks N DIR: N fresh 8 GiB sparse loop devices; prints their paths.
make_disks() {
  local n=$1 dir=$2 i
  for i in $(seq 1 "$n"); do
    truncate -s 8G "$dir/disk$i.img"
    losetup -f --show "$dir/disk$i.img"
  done
}

now() { date +%s.%N; }

# The baseline: the manual bootstrap a person would script. ROOT BASE DEVICE...
manual_bootstrap() {
  local root=$1 base=$2; shift 2
  local conf=$root/etc/ceph/ceph.conf fsid id uuid key dir n=$#
  mkdir -p "$root"/etc/ceph "$root"/var/lib/ceph/{mon,mgr,osd,tmp} "$root"/var/log/ceph "$root"/run/ceph "$root"/run/bench
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$base,v1:127.0.0.1:$((base + 1))]
public_network = 127.0.0.0/8
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_port_min = $((base + 10))
ms_bind_port_max = $((base + 99))
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
auth_allow_insecure_global_id_reclaim = false
mon_data_avail_warn = 5
run_dir = $root/run/ceph
admin_socket = $root/run/ceph/\$cluster-\$name.asok
log_file = $root/var/log/ceph/\$cluster-\$name.log
crash_dir = $root/var/lib/ceph/crash
mon_data = $root/var/lib/ceph/mon/\$cluster-\$id
mgr_data = $root/var/lib/ceph/mgr/\$cluster-\$id
osd_data = $root/var/lib/ceph/osd/\$cluster-\$id
keyring = $root/etc/ceph/\$cluster.\$name.keyring
[mon]
keyring = $root/var/lib/ceph/mon/\$cluster-\$id/keyring
# As aquarium-provision: without restful, which cannot load beside the dashboard's Python modules (ceph-mgr-dashboard
# installed: MGR_MODULE_DEPENDENCY, never HEALTH_OK), and without the dashboard itself.
mgr_initial_modules = iostat nfs
[mgr]
keyring = $root/var/lib/ceph/mgr/\$cluster-\$id/keyring
mgr_disabled_modules = diskprediction_local dashboard
[osd]
keyring = $root/var/lib/ceph/osd/\$cluster-\$id/keyring
CONF
  ceph-authtool --create-keyring "$root/etc/ceph/ceph.client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool --create-keyring "$root/var/lib/ceph/tmp/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$root/var/lib/ceph/tmp/mon.keyring" --import-keyring "$root/etc/ceph/ceph.client.admin.keyring" >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$base,v1:127.0.0.1:$((base + 1))]" "$root/var/lib/ceph/tmp/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$root/var/lib/ceph/tmp/monmap" --keyring "$root/var/lib/ceph/tmp/mon.keyring"
  setsid ceph-mon -c "$conf" -i a -f </dev/null >"$root/var/log/ceph/mon.out" 2>&1 & echo $! >"$root/run/bench/mon.pid"
  if ! ceph -c "$conf" --connect-timeout 60 mon stat >/dev/null; then
    echo "the baseline's monitor did not answer:" >&2; tail -20 "$root/var/log/ceph/mon.out" "$root/var/log/ceph/ceph-mon.a.log" >&2
    exit 1
  fi
  mkdir -p "$root/var/lib/ceph/mgr/ceph-a"
  ceph -c "$conf" auth get-or-create mgr.a mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    -o "$root/var/lib/ceph/mgr/ceph-a/keyring"
  setsid ceph-mgr -c "$conf" -i a -f </dev/null >/dev/null 2>&1 & echo $! >"$root/run/bench/mgr.pid"
  for dev in "$@"; do
    uuid=$(cat /proc/sys/kernel/random/uuid)
    key=$(ceph-authtool --gen-print-key)
    id=$(echo "{\"cephx_secret\": \"$key\"}" | ceph -c "$conf" osd new "$uuid" -i -)
    dir=$root/var/lib/ceph/osd/ceph-$id
    mkdir -p "$dir"
    ln -s "$dev" "$dir/block"
    ceph-authtool --create-keyring "$dir/keyring" --name "osd.$id" --add-key "$key" >/dev/null
    ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "$uuid" --osd-objectstore bluestore >/dev/null 2>&1
    setsid ceph-osd -c "$conf" -i "$id" -f </dev/null >/dev/null 2>&1 & echo $! >"$root/run/bench/osd.$id.pid"
  done
  local deadline=$(( $(date +%s) + ${BENCH_HEALTH_TIMEOUT:-600} ))
  until [ "$(ceph -c "$conf" --connect-timeout 10 osd stat -f json 2>/dev/null | sed -n 's/.*"num_up_osds":\([0-9]*\).*/\1/p')" = "$n" ] &&
        ceph -c "$conf" --connect-timeout 10 health 2>/dev/null | grep -q '^HEALTH_OK'; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "the baseline did not reach HEALTH_OK with $n OSDs up within ${BENCH_HEALTH_TIMEOUT:-600} s:" >&2
      ceph -c "$conf" --connect-timeout 10 status >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

printf 'version: 1\nhost: {hostname: bench-node}\ncluster: {role: bootstrap}\n' >"$work/seed.yaml"

declare -A results
# One sample of each side for $osds OSDs; sample number $1.
aquarium_side() {
  local dir="$work/aq-$osds-$1" disks start end rerun_end
  mkdir -p "$dir"
  mapfile -t disks < <(make_disks "$osds" "$dir"); loops+=("${disks[@]}")
  [ "${#disks[@]}" = "$osds" ] || { echo "could not make $osds loop devices" >&2; exit 1; }
  write_record "$dir/node.json" bench-node "$work/seed.yaml" "${disks[@]}"
  start=$(now)
  "$tool" run --seed "$work/seed.yaml" --node-record "$dir/node.json" --root "$dir/root" --launcher process \
    --base-port "$(free_base)" >"$dir/run.log" 2>&1 || { cat "$dir/run.log" >&2; exit 1; }
  end=$(now)
  "$tool" run --seed "$work/seed.yaml" --node-record "$dir/node.json" --root "$dir/root" --launcher process \
    >"$dir/rerun.log" 2>&1 || { cat "$dir/rerun.log" >&2; exit 1; }
  rerun_end=$(now)
  grep -q "nothing changed" "$dir/rerun.log" || { echo "the rerun changed something:" >&2; cat "$dir/rerun.log" >&2; exit 1; }
  results[aq,$osds]="${results[aq,$osds]:-} $(awk "BEGIN {print $end - $start}")"
  results[rerun,$osds]="${results[rerun,$osds]:-} $(awk "BEGIN {print $rerun_end - $end}")"
  "$tool" stop --root "$dir/root" >/dev/null
}
shell_side() {
  local dir="$work/sh-$osds-$1" disks start end
  mkdir -p "$dir"
  mapfile -t disks < <(make_disks "$osds" "$dir"); loops+=("${disks[@]}")
  [ "${#disks[@]}" = "$osds" ] || { echo "could not make $osds loop devices" >&2; exit 1; }
  start=$(now)
  manual_bootstrap "$dir/root" "$(free_base)" "${disks[@]}"
  end=$(now)
  results[sh,$osds]="${results[sh,$osds]:-} $(awk "BEGIN {print $end - $start}")"
  stop_baseline "$dir/root"
}
for osds in 1 2; do
  alternate "$runs" aquarium_side shell_side
done

median_of() { local values; read -r -a values <<<"$1"; printf '%.1f' "$(median "${values[@]}")"; }
echo
echo "seed -> HEALTH_OK with all OSDs up, median of $runs runs per side (alternating), seconds ($(nproc) CPUs, $(ceph --version | awk '{print $3}'))"
printf '%-6s %22s %22s %26s\n' "OSDs" "aquarium-provision" "manual shell script" "aquarium rerun (no-op)"
for osds in 1 2; do
  printf '%-6s %22s %22s %26s\n' "$osds" "$(median_of "${results[aq,$osds]}")" "$(median_of "${results[sh,$osds]}")" \
    "$(median_of "${results[rerun,$osds]}")"
done
echo "samples (s): $(for key in "${!results[@]}"; do printf '%s:%s; ' "$key" "${results[$key]}"; done)" >&2
