#!/usr/bin/env bash
# Creates or refreshes .bench/<peer>/ from bench/peers/<peer>/requirements.txt: one virtualenv per
# peer, never the project's .venv (aio-fluid installs a `fluid` package that clashes with our SDK).
# Idempotent: it does nothing while the requirements file and the interpreter are unchanged.
# A `# bench-python: X.Y` line in the requirements asks for Python >= X.Y when the machine has one
# (python3.X on PATH, uv's own discovery, or pyenv's versions); otherwise the default python3.
# Usage: make_venv.sh PEER...   (UV may name the uv command; default `uv`)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
uv=${UV:-uv}
export UV_PYTHON_DOWNLOADS=never

runs() { [ -n "$1" ] && "$1" -c 'import sys' >/dev/null 2>&1; }

at_least() { # interpreter, minimum "X.Y"
  "$1" -c "import sys; want = tuple(map(int, '$2'.split('.'))); sys.exit(sys.version_info[:2] < want)" \
    >/dev/null 2>&1
}

pick_python() { # minimum "X.Y" or empty
  local minimum=$1 candidate
  if [ -n "$minimum" ]; then
    local major=${minimum%%.*} minor=${minimum#*.} next
    for next in $(seq "$minor" $((minor + 4))); do
      candidate=$(command -v "python$major.$next" 2>/dev/null || true)
      if runs "$candidate" && at_least "$candidate" "$minimum"; then echo "$candidate"; return; fi
    done
    candidate=$($uv python find ">=$minimum" 2>/dev/null || true)
    if runs "$candidate" && at_least "$candidate" "$minimum"; then echo "$candidate"; return; fi
    if command -v pyenv >/dev/null 2>&1; then
      for candidate in "$(pyenv root)"/versions/*/bin/python3; do
        if runs "$candidate" && at_least "$candidate" "$minimum"; then echo "$candidate"; return; fi
      done
    fi
    echo "make_venv: no Python >= $minimum here, using the default python3" >&2
  fi
  for candidate in "${UV_PYTHON:-}" "$(command -v python3.11 || true)" "$(command -v python3 || true)"; do
    if runs "$candidate"; then echo "$candidate"; return; fi
  done
  echo "make_venv: no python3 found" >&2
  exit 1
}

for peer in "$@"; do
  requirements=$root/bench/peers/$peer/requirements.txt
  venv=$root/.bench/$peer
  [ -f "$requirements" ] || { echo "make_venv: $requirements is missing" >&2; exit 1; }
  minimum=$(sed -n 's/^# bench-python: *\([0-9.]*\).*/\1/p' "$requirements" | head -n 1)
  python=$(pick_python "$minimum")
  version=$("$python" -c 'import sys; print(sys.version.split()[0])')
  want="$(sha256sum "$requirements" | cut -d' ' -f1) python-$version"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.bench-stamp" 2>/dev/null)" = "$want" ]; then
    continue
  fi
  echo "make_venv: $peer (Python $version) -> .bench/$peer"
  rm -rf "$venv"
  $uv venv --quiet --python "$python" "$venv"
  $uv pip install --quiet --python "$venv/bin/python" -r "$requirements"
  echo "$want" >"$venv/.bench-stamp"
done
