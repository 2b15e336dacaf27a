# Sourced by scripts/demo and scripts/test: find Python 3.11+, install the pinned uv into a
# private tool folder, and install the locked dependencies into .venv (uv.lock, --frozen).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV_VERSION=0.13.9

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

PY="$(find_python)"
TOOLS="$ROOT/.cache/tools"
if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "==> installing uv $UV_VERSION into .cache/tools" >&2
  "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
UV="$TOOLS/bin/uv"
export UV_PYTHON="$PY" UV_PYTHON_DOWNLOADS=never

sync() {  # sync [extra ...]: the locked environment, bytecode compiled (imports are faster)
  local args=(sync --frozen --compile-bytecode --quiet ${SYNC_FLAGS:-})
  for extra in "$@"; do args+=(--extra "$extra"); done
  echo "==> installing locked Python dependencies into .venv ${*:+(extras: $*)}" >&2
  "$UV" "${args[@]}"
}
