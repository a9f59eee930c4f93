# Shared by the benchmark scripts (sourced from the repository root).

# find_tool NAME: prints the path of a built NAME, release builds before debug ones; fails if none.
find_tool() {
  local candidate
  for candidate in .build/release/"$1" .build-*/release/"$1" .build/debug/"$1" .build-*/debug/"$1"; do
    if [ -x "$candidate" ]; then echo "$PWD/$candidate"; return 0; fi
  done
  return 1
}

# median NUMBER...: the median of the arguments (the mean of the middle two for an even count).
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit 1; print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# drop_caches: writes back dirty pages and drops the page cache (root), so no side starts with a warmer cache.
drop_caches() { sync; if [ "$(id -u)" = 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }

# run_timed VAR COMMAND...: runs COMMAND once (output to $BENCH_LOG, default /dev/null) and appends its wall time in
# milliseconds to the array VAR. It runs in a subshell: COMMAND cannot set variables. A failed run stops the benchmark with its status and its log: a failure is never
# printed as a figure. (Not inside $(...), where bash turns set -e off.)
run_timed() {
  local -n samples_ref=$1; shift
  local start end rc=0
  start=$(date +%s%N)
  # In a subshell with errexit on and not in a `||` list (which would switch errexit off inside the function),
  # so a failing step inside a shell function fails the run too.
  set +e
  ( set -e; "$@" ) >>"${BENCH_LOG:-/dev/null}" 2>&1
  rc=$?
  set -e
  end=$(date +%s%N)
  if [ "$rc" != 0 ]; then
    echo "benchmark run failed (exit $rc): $*" >&2
    [ -n "${BENCH_LOG:-}" ] && tail -30 "$BENCH_LOG" >&2
    exit 1
  fi
  samples_ref+=($(( (end - start) / 1000000 )))
}

# alternate RUNS A B: runs the functions A and B RUNS times each, alternating which goes first (A B, B A, A B, ...),
# so neither side always runs on a machine the other has just warmed up or loaded.
alternate() {
  local runs=$1 a=$2 b=$3 i
  for i in $(seq 1 "$runs"); do
    if [ $((i % 2)) = 1 ]; then "$a" "$i"; "$b" "$i"; else "$b" "$i"; "$a" "$i"; fi
  done
}

# write_record FILE HOSTNAME SEED LOOP...: a version-1 node record as FirstBoot writes it (docs/firstboot.md), built like
# Tests/TestSupport/NodeRecordFixture: the loop devices as the storage disks, each named by the identity the inventory
# gives it (`file:` + the backing file the kernel reports), no system disk on this machine.
write_record() {
  local file=$1 hostname=$2 seed=$3 loop backing size stamp zero=00000000-0000-0000-0000-000000000000 disks=""
  shift 3
  for loop in "$@"; do
    backing=$(cat "/sys/block/$(basename "$loop")/loop/backing_file")
    size=$(stat -c %s "$backing")
    disks+="${disks:+,}
    {\"byId\": [], \"path\": \"$loop\", \"serial\": null, \"sizeBytes\": $size, \"stableIdentity\": \"file:$backing\", \"wwn\": null}"
  done
  stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  cat >"$file" <<RECORD
{
  "bootMedia" : null,
  "cluster" : "ceph",
  "createdAt" : "$stamp",
  "hostname" : "$hostname",
  "nodeUUID" : "$(cat /proc/sys/kernel/random/uuid)",
  "seedPath" : "$seed",
  "seedSHA256" : "$(sha256sum "$seed" | cut -c1-64)",
  "storageDisks" : [$disks
  ],
  "systemDisk" : {
    "byId" : [],
    "diskGUID" : "$zero",
    "filesystem" : "xfs",
    "filesystemUUID" : "$zero",
    "partitionUUIDs" : {},
    "path" : "/dev/aquarium-test-none",
    "serial" : "AQUARIUM-TEST-NO-SUCH-DISK",
    "stableIdentity" : "serial:AQUARIUM-TEST-NO-SUCH-DISK",
    "wwn" : null
  },
  "updatedAt" : "$stamp",
  "version" : 1
}
RECORD
}
