#!/bin/sh
# Fake VM entrypoint (rbottle test harness). Runs under tini as PID 1.
#   - SSH host keys are made here, at first start, never baked into the image:
#     each new container is a machine with unknown keys.
#   - FAKEVM_AUTHORIZED_KEYS (public keys, one a line) go to ~admin/.ssh/authorized_keys;
#     tests may also `docker exec`/`docker cp` keys in later.
#   - the cgroup filesystems and /proc/sys/net are made writable for a nested engine
#     (CAP_SYS_ADMIN);
#   - runsc (gVisor), when installed and FAKEVM_RUNSC is not 0, is registered with the
#     engine as provisioning/install-docker.sh registers it on a VM;
#   - dockerd starts in the background when installed and FAKEVM_DOCKERD is not 0;
#     FAKEVM_DOCKERD_OPTS adds options (e.g. --storage-driver=vfs).
#   - sshd runs in the foreground on port 22, logging to stderr (docker logs).
set -eu

ssh-keygen -A >/dev/null
mkdir -p /run/sshd
chmod 0755 /run/sshd

if [ -n "${FAKEVM_AUTHORIZED_KEYS:-}" ]; then
    printf '%s\n' "$FAKEVM_AUTHORIZED_KEYS" >>/home/admin/.ssh/authorized_keys
    chown admin:admin /home/admin/.ssh/authorized_keys
    chmod 0600 /home/admin/.ssh/authorized_keys
fi

# Without --privileged the engine mounts the cgroup filesystems read-only;
# runc in a nested engine (started here, or installed later by provisioning
# tests) must create cgroups. With CAP_SYS_ADMIN they can be made writable
# again from inside; without it this does nothing.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    # cgroup v2 (needs --cgroupns=private): writable root, this container's
    # processes moved to a leaf so the controllers can be delegated.
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
    mkdir -p /sys/fs/cgroup/fakevm-init 2>/dev/null || true
    xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/fakevm-init/cgroup.procs 2>/dev/null || true
    sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
        >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
else
    # cgroup v1: each controller is a read-only bind mount.
    for d in /sys/fs/cgroup/*/; do
        mountpoint -q "$d" && { mount -o remount,rw,bind "$d" 2>/dev/null || true; }
    done
fi
# Docker 25+ sets per-interface IPv6 sysctls inside each container's network namespace
# (net.ipv6.conf.eth0.disable_ipv6) and will not start a container without them; the
# outer engine mounts /proc/sys read-only. Only /proc/sys/net is made writable: it holds
# per-network-namespace settings (this VM's and its containers'), while the rest of
# /proc/sys, the host kernel's own settings, stays read-only.
if mount --bind /proc/sys/net /proc/sys/net 2>/dev/null; then
    mount -o remount,bind,rw /proc/sys/net 2>/dev/null || true
fi

# gVisor, registered the way install-docker.sh does on a VM: `runsc install` (keeps the
# rest of daemon.json and any runsc entry already there), with --network=host where this
# runsc release cannot tell a container's network namespace from the host's on this
# kernel (releases before 20240807 on Linux 6.11+: google/gvisor#10704).
if command -v runsc >/dev/null 2>&1 && [ "${FAKEVM_RUNSC:-1}" != 0 ] &&
    ! grep -qs '"runsc"[[:space:]]*:' /etc/docker/daemon.json; then
    set --
    release=$(runsc --version 2>/dev/null | head -n 1 | sed -n 's/.*\([0-9]\{8\}\).*/\1/p')
    if [ -n "$release" ] && [ "$release" -lt 20240807 ] &&
        unshare --net test -e /proc/sys/net/core/rmem_default 2>/dev/null; then
        set -- --network=host
    fi
    runsc install --clobber=false -- "$@" >/var/log/runsc-install.log 2>&1 || true
fi

if command -v dockerd >/dev/null 2>&1 && [ "${FAKEVM_DOCKERD:-1}" != 0 ]; then
    # shellcheck disable=SC2086
    dockerd ${FAKEVM_DOCKERD_OPTS:-} >/var/log/dockerd.log 2>&1 &
fi

exec /usr/sbin/sshd -D -e
