#!/bin/bash
# KIWI NG runs this inside the image root after the packages are installed. It does what
# `aquarium-image build` does to the root tree (see Sources/ImageBuilder/RootfsBuilder.swift):
# enable the overlay's units, drop every per-host identity, prepare the trusted seed key directory.
set -euo pipefail
test -f /.kconfig && . /.kconfig

# Every unit the overlay (kiwi/root -> image/overlay) ships with an [Install] section is enabled.
for unit in /etc/systemd/system/*.service /etc/systemd/system/*.timer /etc/systemd/system/*.target; do
    [ -f "$unit" ] && [ ! -L "$unit" ] || continue
    if grep -q '^\[Install\]' "$unit"; then
        systemctl enable "$(basename "$unit")"
    fi
done

# No identity of the build host and none shared between nodes: systemd creates the machine id on first
# boot, FirstBoot sets the host name from the seed, sshd host keys are generated per node.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/hostname /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts

# Public seed keys go here (FirstBoot refuses unsigned seeds when any *.pub is present).
mkdir -p /etc/aquarium/trusted-seed-keys
chmod 0755 /etc/aquarium/trusted-seed-keys

# Our tools are placed in /usr/local/bin by the build; make sure they are executable.
for tool in aquarium-firstboot aquarium-provision aquarium-image; do
    [ -f "/usr/local/bin/$tool" ] && chmod 0755 "/usr/local/bin/$tool"
done
exit 0
