#!/bin/bash
# KIWI NG runs this inside the image root after debootstrap, before it installs the image packages.
# Services must not start in the build chroot (ceph-mgr-dashboard's postinst, for one, fails when it
# tries to restart ceph-mgr.target there): a policy-rc.d that refuses every start, as
# `aquarium-image build` installs while apt runs (Sources/ImageBuilder/RootfsBuilder.swift).
# config.sh removes it again.
set -euo pipefail
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
exit 0
