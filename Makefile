# Aquarium boot & provisioning — the README's two commands live here.
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)

.PHONY: demo cluster-demo iscsi-demo nfs-demo rolling-demo update-demo update-demo-secure-boot update-demo-systemd-boot inventory test build deps clean install

## demo: the main job: build the USB stick image, boot it in QEMU with a sample seed (scripts/demo)
demo:
	./scripts/demo

## cluster-demo: a rack forms itself: three QEMU nodes from one stick with the rack's seeds reach HEALTH_OK with
## three monitors; node 1 is stopped and a client still writes and reads (scripts/cluster-demo; 15-40 min under TCG)
cluster-demo:
	./scripts/cluster-demo

## iscsi-demo: the cluster-demo rack with an iSCSI target on all three monitor nodes, a gateway each: a real initiator
## (libiscsi) on the bridge finds the three portals, writes through node 1's, reads through the others', and after
## node 1 is stopped writes and reads through node 2's; node 2 then removes node 1 (node remove), its gateway leaves
## the target, and the initiator writes through node 3's (scripts/cluster-demo --iscsi; 20-45 min under TCG)
iscsi-demo:
	./scripts/cluster-demo --iscsi

## nfs-demo: the cluster-demo rack with NFS on all three monitor nodes and a floating address: a client on the bridge
## holds a lock through the address; node 1, its holder, is stopped; the lock is reclaimed from the new holder and
## the file reads back through the same address (scripts/cluster-demo --nfs; 20-45 min under TCG)
nfs-demo:
	./scripts/cluster-demo --nfs

## rolling-demo: the cluster-demo rack, then `update --rolling` to a second image: each node in turn updates its stick,
## reboots into the new slot and is marked good, HEALTH_OK in between (scripts/cluster-demo --rolling-update). Needs
## hardware virtualisation: under TCG on 2 cores the guests' Ceph commands time out (docs/operations.md, rolling update)
rolling-demo:
	./scripts/cluster-demo --rolling-update

## update-demo: A/B slots in QEMU: a v1 stick updates itself to v2 and marks it good; an update to a broken v2 falls
## back to v1 by itself after its 3 tries (scripts/update-demo; three minimal image builds, then about 10 min under TCG)
update-demo:
	./scripts/update-demo

## update-demo-secure-boot: the same with Secure Boot enforced (Microsoft's keys); the sticks' signed GRUB counts the
## trial boots in grubenv
update-demo-secure-boot:
	AQUARIUM_UPDATE_SECURE_BOOT=1 ./scripts/update-demo

## update-demo-systemd-boot: the same on --systemd-boot sticks (systemd-boot counts in the loader entries' names)
update-demo-systemd-boot:
	AQUARIUM_UPDATE_BOOT=systemd-boot ./scripts/update-demo

## inventory: this machine's disks as FirstBoot sees them
inventory: deps build
	.build/debug/aquarium-firstboot inventory

## test: build with warnings as errors and run every test (root, loop devices and real tools required)
test: deps
	./scripts/cleanup-test-devices
	$(SWIFT) build --build-tests
	./scripts/check-run-tests
	./scripts/run-tests

build:
	$(SWIFT) build

## install: the three tools (release, the Swift runtime linked in), a man page per command and bash/zsh/fish
## completions under $(DESTDIR)$(PREFIX) (default PREFIX /usr/local); TOOLS=DIR installs tools already built
PREFIX ?= /usr/local
install:
	./scripts/install --prefix "$(PREFIX)" $(if $(DESTDIR),--destdir "$(DESTDIR)") $(if $(TOOLS),--tools "$(TOOLS)")

## bench-rack: three nodes to HEALTH_OK in network namespaces, aquarium-provision vs a manual script (root; RUNS=N)
.PHONY: bench-rack
bench-rack:
	$(SWIFT) build --product aquarium-provision
	./bench/rack.sh --tool .build/debug/aquarium-provision $(if $(RUNS),--runs $(RUNS))

## kiwi-image: the same appliance built with KIWI NG from kiwi/ (Debian's kiwi package; root; the host's Debian
## mirror): out-kiwi/ gets the raw OEM disk, its bmap and SHA256SUMS (scripts/kiwi-build; OUTPUT=DIR, TOOLS=DIR)
.PHONY: kiwi-image
kiwi-image:
	./scripts/kiwi-build $(if $(OUTPUT),--output "$(OUTPUT)") $(if $(TOOLS),--tools "$(TOOLS)")

## kiwi-check: the KIWI image (make kiwi-image) and ours booted in QEMU with the same seed and blank disks: FirstBoot's
## report, plan and system disk layout must be the same on both (scripts/kiwi-check; about 5 min under TCG)
.PHONY: kiwi-check
kiwi-check:
	./scripts/kiwi-check $(if $(TOOLS),--tools "$(TOOLS)")

## bench-build: the minimal image from a warm cache, the root tree in memory against on disk, median of RUNS
## (default 5) builds each (root)
.PHONY: bench-build
bench-build:
	./bench/build.sh $(if $(RUNS),--runs $(RUNS))

## bench-boot: the minimal image booted in QEMU to FirstBoot's handoff, median of RUNS (default 3) boots (root);
## BASELINE=OTHER.raw boots an earlier image alternately with it and compares
.PHONY: bench-boot
bench-boot:
	./bench/boot.sh $(if $(RUNS),--runs $(RUNS)) $(if $(BASELINE),--baseline $(BASELINE))

deps:
	./scripts/install-deps

clean:
	rm -rf .build
