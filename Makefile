# Aquarium boot & provisioning — the README's two commands live here.
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)

.PHONY: demo test build deps clean

## demo: the main job (for now: build the tools and show this machine's disk inventory)
demo: deps build
	.build/debug/aquarium-firstboot inventory
	@echo
	.build/debug/aquarium-firstboot inventory --json | jq -c '.disks[] | {path, sizeBytes, transport, isBootMedia}'

## test: build with warnings as errors and run every test (root, loop devices and real tools required)
test: deps
	./scripts/cleanup-test-devices
	$(SWIFT) build --build-tests
	./scripts/run-tests

build:
	$(SWIFT) build

deps:
	./scripts/install-deps

clean:
	rm -rf .build
