#!/usr/bin/env bash
# A small container image made on this machine, no registry needed: busybox's applets (sh, ping,
# nc, dd, ...) as a root file system, imported into the local Docker daemon.
#   bash scripts/busybox_image.sh [NAME]      (default emu-busybox:latest)
# Any image `docker images` lists can be a node's `image:` (docker build, docker load or docker
# import one first); this one serves the tests and the README's example.
set -euo pipefail
name="${1:-emu-busybox:latest}"
busybox="$(command -v busybox)" || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$name" >/dev/null
echo "$name"
