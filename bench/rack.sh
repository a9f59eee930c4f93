#!/usr/bin/env bash
# Rack benchmark (issue 14): three nodes from start to HEALTH_OK with 3 monitors in quorum and 3 bluestore OSDs up
# (one 8 GiB loop device per node), comparing
#   1. `aquarium-provision run --launcher process --seed-network` started on the three nodes at once, each with a rack
#      seed (role: monitor, cluster.rack with the rack's fsid, monitors and keys) and a node record naming its disk;
#   2. a plain shell script doing the same manual multi-monitor bootstrap on the three nodes at once with Ceph's own
#      tools (ceph-authtool with the same keys on every node, monmaptool listing the three monitors, ceph-mon --mkfs,
#      ceph-mgr, ceph osd new, ceph-osd --mkfs) and the single-node baseline's settings with pools at 3/2.
# Each node is a network namespace of its own (10.77.0.N/24 on eth0) wired to a bridge br-public in one more namespace,
# the switch, as Tests/TestSupport/NetworkLab.swift does: nothing is added to this machine's own namespace and no
# namespace has a route out. A side's time runs from starting the three nodes to all three finishing (each finishes at
# HEALTH_OK with its own OSD up and a manager active); then the quorum is checked to hold the three monitors, and
# three OSDs to be up.
# Needs root, ip, losetup and the Ceph packages (scripts/install-deps). Every daemon, namespace, loop device and file
# it creates is removed on exit. Usage: bench/rack.sh [--tool PATH] [--runs N]
# --runs: samples per side (default 1: a sample takes about a minute); the sides alternate which goes first, each
# side's daemons are stopped and the disks wiped before the next sample, and any failed or timed-out run fails the
# benchmark. BENCH_HEALTH_TIMEOUT: seconds a baseline node may wait for its quorum and for HEALTH_OK (default 600).
# BENCH_KEEP_LOGS=DIR: copies every node's run log (and aquarium-provision's events.jsonl, with each step's time) there,
# DIR/aq-1/node-1.log, ..., before the work directory goes.
set -euo pipefail

tool=""
runs=1
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
  echo "aquarium-provision not built: run 'swift build --product aquarium-provision' or pass --tool PATH" >&2
  exit 2
fi
case "$tool" in /*) ;; *) tool=$PWD/$tool ;; esac
[ "$(id -u)" = 0 ] || { echo "bench/rack.sh needs root (network namespaces, loop devices)" >&2; exit 2; }
for program in ip losetup blockdev ceph ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool wipefs sha256sum timeout; do
  command -v "$program" >/dev/null || { echo "missing $program: run scripts/install-deps" >&2; exit 2; }
done

nodes=3
network=10.77.0.0/24
address() { echo "10.77.0.$1"; }
lab="aqrack-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
switch="$lab-sw"
namespace() { echo "$lab-$1"; }

work=$(mktemp -d /tmp/aquarium-bench-rack-XXXXXX)
loops=()
namespaces=()
runners=()  # pids of the per-node runs in flight (aquarium-provision or a baseline node), killed on failure

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
# stop_aquarium DIR: `aquarium-provision stop` for every node root of a sample, each in its node's namespace.
stop_aquarium() {
  local dir=$1 n
  for n in $(seq 1 "$nodes"); do
    [ -d "$dir/node-$n/root" ] || continue
    ip netns exec "$(namespace "$n")" timeout 120 "$tool" stop --root "$dir/node-$n/root" >>"$dir/node-$n/stop.log" 2>&1 ||
      echo "aquarium-provision stop failed for $dir/node-$n (see $dir/node-$n/stop.log)" >&2
  done
}
# stop_runners: kills the per-node runs this script started that still run (after a failure).
stop_runners() {
  local pid
  for pid in "${runners[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${runners[@]}"; do wait "$pid" 2>/dev/null || true; done
  runners=()
}
cleanup() {
  set +e
  stop_runners
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
    for log in "$work"/*/node-*/run.log; do
      [ -f "$log" ] || continue
      sample=$(basename "$(dirname "$(dirname "$log")")")
      mkdir -p "$BENCH_KEEP_LOGS/$sample"
      cp "$log" "$BENCH_KEEP_LOGS/$sample/$(basename "$(dirname "$log")").log"
      events=$(dirname "$log")/root/var/lib/aquarium/events.jsonl
      [ -f "$events" ] && cp "$events" "$BENCH_KEEP_LOGS/$sample/$(basename "$(dirname "$log")").events.jsonl"
    done
  fi
  for dir in "$work"/aq-*; do [ -d "$dir" ] && stop_aquarium "$dir"; done
  for root in "$work"/sh-*/node-*/root; do [ -d "$root" ] && stop_baseline "$root"; done
  # Every process left in a node's namespace was started by this script (the namespaces are its own): a daemon that
  # outlived its stop would keep the namespace alive.
  for ns in "${namespaces[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      echo "killing pid $pid left in $ns: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" >&2
      kill -9 "$pid"
    done
    ip netns delete "$ns"
  done
  for loop in "${loops[@]}"; do losetup -d "$loop"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench/rack.sh failed at line $LINENO" >&2' ERR

# The lab: the switch namespace with br-public, one namespace per node with eth0 (its veth peer on the bridge) and lo.
make_lab() {
  local n ns
  ip netns add "$switch"; namespaces+=("$switch")
  ip -n "$switch" link add br-public type bridge
  ip -n "$switch" link set br-public up
  for n in $(seq 1 "$nodes"); do
    ns=$(namespace "$n")
    ip netns add "$ns"; namespaces=("$ns" "${namespaces[@]}")  # the nodes are deleted before the switch
    ip -n "$ns" link set lo up
    # Created in the node's namespace, the switch side moved to the switch: nothing appears in this namespace.
    ip -n "$ns" link add eth0 type veth peer name "h$n-pub" netns "$switch"
    ip -n "$switch" link set "h$n-pub" master br-public
    ip -n "$switch" link set "h$n-pub" up
    ip -n "$ns" address add "$(address "$n")/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
}

# One 8 GiB sparse loop device per node, kept for the whole benchmark and wiped before every sample.
make_disks() {
  local n
  for n in $(seq 1 "$nodes"); do
    truncate -s 8G "$work/disk-$n.img"
    loops+=("$(losetup -f --show "$work/disk-$n.img")")
  done
}
wipe_disks() {
  local loop sectors
  for loop in "${loops[@]}"; do
    wipefs -a -q "$loop"
    sectors=$(blockdev --getsz "$loop")
    dd if=/dev/zero of="$loop" bs=1M count=1 oflag=direct status=none
    dd if=/dev/zero of="$loop" bs=512 count=2048 seek=$((sectors - 2048)) oflag=direct status=none
  done
}

now() { date +%s.%N; }

# wait_nodes WHAT DIR: waits for the runs in `runners` (one per node, logs in DIR/node-N/run.log); on the first that
# fails, stops the others and fails with its log.
wait_nodes() {
  local what=$1 dir=$2 pid rc n
  declare -A node_of=()
  for n in $(seq 1 "${#runners[@]}"); do node_of[${runners[$((n - 1))]}]=$n; done
  while [ "${#node_of[@]}" -gt 0 ]; do
    rc=0; wait -n -p pid "${!node_of[@]}" || rc=$?
    n=${node_of[$pid]}; unset "node_of[$pid]"
    if [ "$rc" != 0 ]; then
      echo "$what on node-$n failed (exit $rc):" >&2
      tail -30 "$dir/node-$n/run.log" >&2
      stop_runners
      exit 1
    fi
  done
  runners=()
}

# check_cluster CONF: seen from node 1, the monitors in quorum are the three nodes' and three OSDs are up.
check_cluster() {
  local names up
  names=$(ip netns exec "$(namespace 1)" timeout 60 ceph -c "$1" quorum_status -f json |
    sed -n 's/.*"quorum_names":\[\([^]]*\)\].*/\1/p' | tr -d '"')
  up=$(ip netns exec "$(namespace 1)" timeout 60 ceph -c "$1" osd stat -f json | sed -n 's/.*"num_up_osds":\([0-9]*\).*/\1/p')
  if [ "$names" != "node-1,node-2,node-3" ] || [ "$up" != 3 ]; then
    echo "the quorum is [$names] with $up OSDs up, expected node-1,node-2,node-3 and 3 ($1)" >&2
    exit 1
  fi
}

# The rack's cluster, decided before a sample as `aquarium-image rack seeds` would: fsid and keys (both sides get theirs
# outside the timed part).
new_secrets() {
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mon_key=$(ceph-authtool --gen-print-key)
  admin_key=$(ceph-authtool --gen-print-key)
  join_key=$(ceph-authtool --gen-print-key)
}

# write_seed FILE N: node N's rack seed (role: monitor; the three nodes are the rack's monitors).
write_seed() {
  local file=$1 n=$2 m
  {
    printf 'version: 1\nhost:\n  hostname: node-%s\nnetwork:\n  public_network: %s\n' "$n" "$network"
    printf 'cluster:\n  role: monitor\n  rack:\n    fsid: %s\n    join_key: %s\n    monitors:\n' "$fsid" "$join_key"
    for m in $(seq 1 "$nodes"); do printf '      - {host: node-%s, address: %s}\n' "$m" "$(address "$m")"; done
    printf '    monitor_key: %s\n    admin_key: %s\n' "$mon_key" "$admin_key"
  } >"$file"
}

# The baseline, one node: the manual bootstrap a person would script for a three-monitor cluster, run in the node's
# namespace on all three nodes at once. ROOT N DEVICE FSID MON_KEY ADMIN_KEY BOOTSTRAP_OSD_KEY
# Exported (bash -c in `ip netns exec`), so it uses no other function of this script.
baseline_node() {
  local root=$1 n=$2 dev=$3 fsid=$4 mon_key=$5 admin_key=$6 osd_bootstrap_key=$7
  local conf=$root/etc/ceph/ceph.conf name=node-$n id uuid key dir m hosts="" members="" addv=()
  local limit=${BENCH_HEALTH_TIMEOUT:-600}
  for m in 1 2 3; do
    hosts+="${hosts:+,}[v2:10.77.0.$m:3300,v1:10.77.0.$m:3301]"
    members+="${members:+,}node-$m"
    addv+=(--addv "node-$m" "[v2:10.77.0.$m:3300,v1:10.77.0.$m:3301]")
  done
  mkdir -p "$root"/etc/ceph "$root"/var/lib/ceph/{mon,mgr,osd,tmp} "$root"/var/log/ceph "$root"/run/ceph \
    "$root"/run/bench
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon_initial_members = $members
mon_host = $hosts
public_network = 10.77.0.0/24
ms_bind_port_min = 3310
ms_bind_port_max = 3399
osd_pool_default_size = 3
osd_pool_default_min_size = 2
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
[mgr]
keyring = $root/var/lib/ceph/mgr/\$cluster-\$id/keyring
[osd]
keyring = $root/var/lib/ceph/osd/\$cluster-\$id/keyring
crush_location = root=default host=$name
CONF
  # The same keys on every node: the admin, the monitors' and the one OSDs are created with.
  ceph-authtool --create-keyring "$root/etc/ceph/ceph.client.admin.keyring" -n client.admin --add-key "$admin_key" \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool --create-keyring "$root/etc/ceph/ceph.client.bootstrap-osd.keyring" -n client.bootstrap-osd \
    --add-key "$osd_bootstrap_key" --cap mon 'allow profile bootstrap-osd' >/dev/null
  ceph-authtool --create-keyring "$root/var/lib/ceph/tmp/mon.keyring" -n mon. --add-key "$mon_key" --cap mon 'allow *' >/dev/null
  ceph-authtool "$root/var/lib/ceph/tmp/mon.keyring" --import-keyring "$root/etc/ceph/ceph.client.admin.keyring" >/dev/null
  ceph-authtool "$root/var/lib/ceph/tmp/mon.keyring" --import-keyring "$root/etc/ceph/ceph.client.bootstrap-osd.keyring" >/dev/null
  monmaptool --create --fsid "$fsid" "${addv[@]}" "$root/var/lib/ceph/tmp/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i "$name" --monmap "$root/var/lib/ceph/tmp/monmap" --keyring "$root/var/lib/ceph/tmp/mon.keyring"
  setsid ceph-mon -c "$conf" -i "$name" -f </dev/null >"$root/var/log/ceph/mon.out" 2>&1 & echo $! >"$root/run/bench/mon.pid"
  # Answers once a quorum (two of the three monitors) formed.
  if ! ceph -c "$conf" --connect-timeout "$limit" mon stat >/dev/null; then
    echo "mon.$name found no quorum within $limit s:" >&2
    tail -20 "$root/var/log/ceph/mon.out" "$root/var/log/ceph/ceph-mon.$name.log" >&2
    exit 1
  fi
  mkdir -p "$root/var/lib/ceph/mgr/ceph-$name"
  ceph -c "$conf" auth get-or-create "mgr.$name" mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    -o "$root/var/lib/ceph/mgr/ceph-$name/keyring"
  setsid ceph-mgr -c "$conf" -i "$name" -f </dev/null >/dev/null 2>&1 & echo $! >"$root/run/bench/mgr.pid"
  uuid=$(cat /proc/sys/kernel/random/uuid)
  key=$(ceph-authtool --gen-print-key)
  id=$(echo "{\"cephx_secret\": \"$key\"}" | ceph -c "$conf" -n client.bootstrap-osd osd new "$uuid" -i -)
  dir=$root/var/lib/ceph/osd/ceph-$id
  mkdir -p "$dir"
  ln -s "$dev" "$dir/block"
  ceph-authtool --create-keyring "$dir/keyring" --name "osd.$id" --add-key "$key" >/dev/null
  ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "$uuid" --osd-objectstore bluestore >/dev/null 2>&1
  setsid ceph-osd -c "$conf" -i "$id" -f </dev/null >/dev/null 2>&1 & echo $! >"$root/run/bench/osd.$id.pid"
  # Done once this node's OSD is up, a manager is active and the cluster is HEALTH_OK (no MON_DOWN: all three
  # monitors in quorum). The manager is checked apart: Ceph reports no missing manager for its first 2 minutes.
  local deadline=$(( $(date +%s) + limit ))
  until ceph -c "$conf" --connect-timeout 10 osd dump 2>/dev/null | grep -q "^osd\.$id up" &&
        ceph -c "$conf" --connect-timeout 10 mgr stat -f json 2>/dev/null | grep -q '"available": *true' &&
        ceph -c "$conf" --connect-timeout 10 health 2>/dev/null | grep -q '^HEALTH_OK'; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "node $name: no HEALTH_OK with osd.$id up and a manager active within $limit s:" >&2
      ceph -c "$conf" --connect-timeout 10 status >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}
export -f baseline_node

declare -A results
# One sample of each side; sample number $1.
aquarium_side() {
  local dir="$work/aq-$1" n node start end
  wipe_disks
  new_secrets
  for n in $(seq 1 "$nodes"); do
    node=$dir/node-$n
    mkdir -p "$node"
    write_seed "$node/seed.yaml" "$n"
    write_record "$node/node.json" "node-$n" "$node/seed.yaml" "${loops[$((n - 1))]}"
  done
  start=$(now)
  for n in $(seq 1 "$nodes"); do
    node=$dir/node-$n
    ip netns exec "$(namespace "$n")" "$tool" run --seed "$node/seed.yaml" --node-record "$node/node.json" \
      --root "$node/root" --launcher process --seed-network --rack-timeout 300 >"$node/run.log" 2>&1 &
    runners+=($!)
  done
  wait_nodes "aquarium-provision run" "$dir"
  end=$(now)
  check_cluster "$dir/node-1/root/etc/ceph/ceph.conf"
  results[aq]="${results[aq]:-} $(awk "BEGIN {print $end - $start}")"
  stop_aquarium "$dir"
}
shell_side() {
  local dir="$work/sh-$1" n start end bootstrap_key
  wipe_disks
  new_secrets
  bootstrap_key=$join_key  # the key OSDs are created with, as the rack's join key is on the aquarium side
  for n in $(seq 1 "$nodes"); do mkdir -p "$dir/node-$n"; done
  start=$(now)
  for n in $(seq 1 "$nodes"); do
    ip netns exec "$(namespace "$n")" bash -c 'set -euo pipefail; baseline_node "$@"' baseline_node \
      "$dir/node-$n/root" "$n" "${loops[$((n - 1))]}" "$fsid" "$mon_key" "$admin_key" "$bootstrap_key" \
      >"$dir/node-$n/run.log" 2>&1 &
    runners+=($!)
  done
  wait_nodes "the baseline" "$dir"
  end=$(now)
  check_cluster "$dir/node-1/root/etc/ceph/ceph.conf"
  results[sh]="${results[sh]:-} $(awk "BEGIN {print $end - $start}")"
  for n in $(seq 1 "$nodes"); do stop_baseline "$dir/node-$n/root"; done
}

make_lab
make_disks
alternate "$runs" aquarium_side shell_side

median_of() { local values; read -r -a values <<<"$1"; median "${values[@]}"; }
aq=$(median_of "${results[aq]}")
sh=$(median_of "${results[sh]}")
echo
echo "three nodes at once -> HEALTH_OK (3 monitors in quorum, 3 OSDs up), median of $runs runs per side (alternating)," \
  "seconds ($(nproc) CPUs, $(ceph --version | awk '{print $3}'))"
printf '%-8s %22s %22s %18s\n' "nodes" "aquarium-provision" "manual shell script" "aquarium/manual"
printf '%-8s %22.1f %22.1f %18.2f\n' "$nodes" "$aq" "$sh" "$(awk "BEGIN {print $aq / $sh}")"
echo "samples (s): aquarium:${results[aq]}; manual:${results[sh]}" >&2
