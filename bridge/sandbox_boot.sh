#!/bin/sh
# Boot the sandbox host. unshare(1) starts this script as PID 1 of fresh PID, mount,
# cgroup and UTS namespaces; it builds the root file system and then execs systemd.
#
# The root is an overlay with the machine's / as its read-only lower layer and, as its
# upper layer, the tmpfs that `previews sandbox up` mounted on $1, so nothing the sandbox
# installs or writes outlives `down`, while a reboot keeps it. The network is shared, so
# services inside listen on the machine's loopback addresses.
set -eu

state="$1"
# The pr-previews checkout, shown read-only at the same path inside the sandbox: the overlay
# would hide it when it sits on another file system or under /tmp, and would show a stale
# copy of files edited after the boot.
project="$2"

# Mounts made below must never propagate back to the machine.
mount --make-rprivate /

mkdir -p "$state/upper" "$state/work" "$state/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$state/upper,workdir=$state/work" "$state/root"

root="$state/root"
mount --rbind /dev "$root/dev"
# A /dev/shm of its own, like the IPC namespace: previews must not leave objects on the machine.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
mount --rbind /sys "$root/sys"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
mkdir -p "$root$project"
mount --rbind "$project" "$root$project"
mount -o remount,bind,ro "$root$project"
# The bridge runs as an unprivileged user from this checkout, so it must be able to reach it
# even under /root (mode 0700). The change lands in the overlay only.
directory="$project"
while [ "$directory" != "/" ]; do
    directory="$(dirname "$directory")"
    chmod o+x "$root$directory"
done

# A minimal boot target: the machine's multi-user.target may pull in consoles and
# unrelated services. previews.target, which site.yml installs, contains the preview units,
# so they come back when the sandbox boots again.
mkdir -p "$root/etc/systemd/system"
cat > "$root/etc/systemd/system/previews-sandbox.target" <<'UNIT'
[Unit]
Description=pr-previews sandbox host
Requires=sysinit.target
Wants=dbus.socket previews.target nginx.service
After=sysinit.target
AllowIsolate=yes
UNIT

hostname previews-sandbox
echo previews-sandbox > "$root/etc/hostname"
# sudo looks its host name up and complains when it does not resolve.
grep -q " previews-sandbox$" "$root/etc/hosts" || echo "127.0.1.1 previews-sandbox" >> "$root/etc/hosts"

mkdir -p "$root/.oldroot"
cd "$root"
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot

exec env -i container=other PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --unit=previews-sandbox.target
