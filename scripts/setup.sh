# Sourced by the Quick start scripts: installs what a fresh Debian machine lacks, idempotently.
# Leaves a virtual environment in .venv with emu installed (editable) and puts it on PATH.
# Labs need root (network namespaces need CAP_NET_ADMIN); with EMU_NO_ROOT=1 (the unit tier)
# it sets up the Python side only and needs no root, as long as python3-venv is there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
need_apt=()
if [ "${EMU_NO_ROOT:-0}" != 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "emu: run as root (network namespaces need CAP_NET_ADMIN); the unit tier needs none: bash scripts/test.sh --unit" >&2
        exit 1
    fi
    command -v ip >/dev/null && command -v tc >/dev/null || need_apt+=(iproute2)
    command -v tcpdump >/dev/null || need_apt+=(tcpdump)     # emu capture
    command -v nft >/dev/null || need_apt+=(nftables)       # traffic classes for any program (emu exec --class)
    command -v iperf3 >/dev/null || need_apt+=(iperf3)       # a real program in the tests of --class
    command -v mpirun >/dev/null || need_apt+=(openmpi-bin)  # emu mpirun
    command -v dockerd >/dev/null || need_apt+=(docker.io)   # container nodes (image: in a topology)
    command -v busybox >/dev/null || need_apt+=(busybox-static)  # scripts/busybox_image.sh (the tests' image)
    command -v ovs-vswitchd >/dev/null || need_apt+=(openvswitch-switch)   # the openflow backend's switches
    command -v ethtool >/dev/null || need_apt+=(ethtool)     # (its ports send without checksum offload)
fi
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "emu: missing Debian packages ${need_apt[*]}: as root, apt-get install ${need_apt[*]}" >&2
        exit 1
    fi
    echo "installing ${need_apt[*]} (apt)"
    # no service starts at install (openvswitch-switch's would: each lab runs OVS daemons of its own)
    policy=/usr/sbin/policy-rc.d ours=0 apt_ok=1
    [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && ours=1; }
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null; } || apt_ok=0
    [ "$ours" = 1 ] && rm -f "$policy"
    [ "$apt_ok" = 1 ] || { echo "emu: apt-get install ${need_apt[*]} failed" >&2; exit 1; }
fi
if [ "${EMU_NO_ROOT:-0}" != 1 ] && ! docker info >/dev/null 2>&1; then
    # No Docker daemon answers (a machine without systemd starts none): start one, for container nodes.
    echo "starting dockerd (log: /var/log/emu-dockerd.log)"
    setsid dockerd >/var/log/emu-dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 600); do docker info >/dev/null 2>&1 && break; sleep 0.1; done   # up to 60 s
    docker info >/dev/null 2>&1 || echo "emu: dockerd did not start (see /var/log/emu-dockerd.log); container nodes will not work" >&2
fi
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    python3 -m venv "$ROOT/.venv"
fi
# Reinstall whenever pyproject.toml (the dependency list) differs from the one last installed.
stamp="$ROOT/.venv/.installed-pyproject"
if ! cmp -s "$ROOT/pyproject.toml" "$stamp"; then
    echo "installing emu and its dependencies into .venv (pip)"
    "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test,sweep]"
    cp "$ROOT/pyproject.toml" "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
cd "$ROOT"
