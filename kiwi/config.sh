#!/bin/bash
# KIWI NG runs this inside the image root after the packages are installed and the overlay (kiwi/root) is
# copied. It does what `aquarium-image build` does to the root tree (see Sources/ImageBuilder/RootfsBuilder.swift,
# `customise`): enable the units, drop every per-host identity, prepare the trusted seed key directory, write
# the release file and rebuild the initramfs with the overlay's hooks.
set -euo pipefail
test -f /.kconfig && . /.kconfig

# post_bootstrap.sh kept services from starting while the packages were installed; the node starts them.
rm -f /usr/sbin/policy-rc.d

# Every unit the overlay (kiwi/root -> image/overlay) ships with an [Install] section is enabled, and the
# units image/aquarium.yaml lists under `units`.
for unit in /etc/systemd/system/*.service /etc/systemd/system/*.timer /etc/systemd/system/*.target \
            /usr/lib/systemd/system/aquarium-*; do
    [ -f "$unit" ] && [ ! -L "$unit" ] || continue
    if grep -q '^\[Install\]' "$unit"; then
        systemctl enable "$(basename "$unit")"
    fi
done
systemctl enable systemd-networkd.service systemd-networkd-wait-online.service

# No identity of the build host and none shared between nodes: systemd creates the machine id on first
# boot, FirstBoot sets the host name from the seed, sshd host keys are generated per node.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/hostname /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts
# open-iscsi's initiator name: made per node when iscsid first starts (the one its postinst made would be shared).
if [ -f /etc/iscsi/initiatorname.iscsi ]; then
    printf 'GenerateName=yes\n' > /etc/iscsi/initiatorname.iscsi
    chmod 0600 /etc/iscsi/initiatorname.iscsi
fi

# Public seed keys go here (FirstBoot refuses unsigned seeds when any *.pub is present).
mkdir -p /etc/aquarium/trusted-seed-keys
chmod 0755 /etc/aquarium/trusted-seed-keys

# The release the Provisioner reports (image/ writes RELEASE=<release> the same way).
printf 'RELEASE=kiwi-%s\n' "${kiwi_iversion:-0}" > /etc/aquarium/image-release

# Our tools are placed in /usr/local/bin by scripts/kiwi-build; make sure they are executable.
for tool in aquarium-firstboot aquarium-provision aquarium-image; do
    if [ -f "/usr/local/bin/$tool" ]; then
        chmod 0755 "/usr/local/bin/$tool"
    fi
done

# KIWI's systemd_boot setup installs the kernel into the ESP with kernel-install; Debian 12's kernel-install
# writes Boot Loader Specification entries only with layout=bls.
mkdir -p /etc/kernel
printf 'layout=bls\n' > /etc/kernel/install.conf

# The kernel package built the initramfs before the overlay was copied: rebuild it with the overlay's
# initramfs-tools hooks and modprobe settings (KIWI's initrd_system="none" keeps this one).
if [ -x /usr/sbin/update-initramfs ]; then
    update-initramfs -u -k all
fi
exit 0
