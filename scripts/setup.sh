# Sourced by the Quick start scripts: installs what a fresh Debian machine lacks, idempotently.
# Leaves a virtual environment in .venv with emu installed (editable) and puts it on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" != 0 ]; then
    echo "emu: run as root (network namespaces need CAP_NET_ADMIN)" >&2
    exit 1
fi
need_apt=()
command -v ip >/dev/null && command -v tc >/dev/null || need_apt+=(iproute2)
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
command -v tcpdump >/dev/null || need_apt+=(tcpdump)     # emu capture
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing ${need_apt[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
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
