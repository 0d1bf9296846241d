#!/usr/bin/env bash
# Makes a Debian root filesystem for `docker import`, close to the official debian:SUITE-slim images:
# debootstrap's minbase, apt sources for the point-release updates and security fixes, every package
# brought up to date, no manuals or documentation (copyright files stay), no apt caches, and no
# service started by a package's install script (policy-rc.d says no, as it does in those images).
#
# Usage: rootfs.sh SUITE TARBALL      (as root: debootstrap needs it)
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: rootfs.sh SUITE TARBALL" >&2; exit 2; }
suite=$1 tarball=$2
root=$(mktemp -d)
chmod 0755 "$root"  # it becomes the image's /, which every user must be able to enter
cleanup() { # debootstrap mounts proc and sys while it runs: never delete through a mount left behind
    local mount
    for mount in proc sys; do
        if mountpoint -q "$root/$mount"; then umount -l "$root/$mount"; fi
    done
    rm -rf --one-file-system "$root" "$tarball.tmp"
}
trap cleanup EXIT

# No mirror on the command line: debootstrap's default one, so that no host name is written here. The
# updates and security suites are taken from the same mirror.
debootstrap --variant=minbase "$suite" "$root"
mirror=$(awk '$1 == "deb" { print $2; exit }' "$root/etc/apt/sources.list")
[[ $mirror == */debian ]] || { echo "rootfs.sh: unexpected mirror '$mirror' in sources.list" >&2; exit 1; }
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
SOURCES

cat > "$root/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
# No manuals, documentation or translations in this image (the copyright files stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
SLIM
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,info,groff,lintian,locale}/*

cat > "$root/etc/apt/apt.conf.d/docker-slim" <<'APT'
// No layer keeps what apt downloads or caches: packages are deleted after their install, and the
// package caches (about 90 MB) are not written at all.
Binary::apt::APT::Keep-Downloaded-Packages "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
printf '#!/bin/sh\n# No service starts while an image is built.\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

chroot "$root" apt-get update
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -y upgrade
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
find "$root/var/log" -type f -delete
# The build host's resolver and name: Docker provides its own to each container.
: > "$root/etc/resolv.conf"
: > "$root/etc/hostname"

# Docker mounts its own /dev in every container.
tar --numeric-owner --exclude='./dev/*' -C "$root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
