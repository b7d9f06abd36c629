#!/usr/bin/env bash
# Prepare a machine for kapmonitor from nothing: Debian packages, a Python >= 3.12 venv, the package.
#   scripts/bootstrap.sh          runtime only (for `make demo`)
#   scripts/bootstrap.sh --dev    plus test and lint tools (for `make test`)
# As root it installs missing Debian packages with apt-get; otherwise it prints the exact
# apt-get line and stops. Re-running is cheap: each step is skipped when already done.
set -euo pipefail

cd "$(dirname "$0")/.."
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
VENV="${KAPMONITOR_VENV:-.venv}"

say() { printf 'bootstrap: %s\n' "$*" >&2; }

# ---- 1. Debian packages -------------------------------------------------------------------
# Qt 6 (PySide6 wheels) needs these system libraries for its xcb/offscreen platforms, EGL/GL,
# xkb and fonts; QtMultimedia needs libpulse; the alarm-sound tests need a PulseAudio server
# with a null sink (pulseaudio, pactl/parec from pulseaudio-utils).
RUNTIME_DEBS=(
  libegl1 libgl1 libopengl0 libglib2.0-0 libdbus-1-3 libfontconfig1 libfreetype6 fonts-dejavu-core
  libxkbcommon0 libxkbcommon-x11-0 libx11-xcb1 libxrender1 libxi6 libsm6 libice6
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0
  libxcb-render-util0 libxcb-image0 libxcb-xkb1 libxcb-xfixes0 libxcb-sync1 libxcb-shm0
  libpulse0 libpulse-mainloop-glib0 libasound2
)
DEV_DEBS=(pulseaudio pulseaudio-utils)

wanted=("${RUNTIME_DEBS[@]}")
[[ $DEV == 1 ]] && wanted+=("${DEV_DEBS[@]}")
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
else
  say "not a Debian system: make sure the equivalents of these are installed: ${wanted[*]}"
fi
if ((${#missing[@]})); then
  line="apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ $(id -u) == 0 ]]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages. Run as root, then run this command again:"
    printf '  sudo %s\n' "$line" >&2
    exit 1
  fi
fi

# ---- 2. A working Python >= 3.12 -----------------------------------------------------------
# PySide6 6.12 aborts on CPython 3.11 (design.md, "Measured facts"). pyenv shims refuse to run
# without PYENV_VERSION, so every candidate is tested by running it.
works() { "$1" -c 'import sys, venv, sqlite3, ensurepip; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
find_python() {
  local c candidates=()
  [[ -n "${KAPMONITOR_PYTHON:-}" ]] && candidates+=("$KAPMONITOR_PYTHON")
  for c in python3.13 python3.12 python3; do
    command -v "$c" >/dev/null 2>&1 && candidates+=("$(command -v "$c")")
  done
  local roots=("${PYENV_ROOT:-}" "$HOME/.pyenv" /root/.pyenv /opt/pyenv)
  for r in "${roots[@]}"; do
    [[ -n "$r" && -d "$r/versions" ]] || continue
    for c in $(ls -d "$r"/versions/3.1[2-9]* 2>/dev/null | sort -rV); do candidates+=("$c/bin/python3"); done
  done
  for c in /usr/local/bin/python3.13 /usr/local/bin/python3.12 /usr/bin/python3.13 /usr/bin/python3.12; do
    candidates+=("$c")
  done
  for c in "${candidates[@]}"; do
    if [[ -x "$c" ]] && works "$c"; then echo "$c"; return 0; fi
  done
  return 1
}

if [[ -x "$VENV/bin/python" ]] && works "$VENV/bin/python"; then
  :
else
  rm -rf "$VENV"
  if ! PY=$(find_python); then
    say "no working Python 3.12 or newer was found (tried python3.13, python3.12, python3, pyenv versions)."
    say "Install one (e.g. 'pyenv install 3.12' or your distribution's python3.12 with venv), or set"
    say "KAPMONITOR_PYTHON=/path/to/python3.12 and run this command again."
    exit 1
  fi
  say "creating $VENV with $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >"$VENV/pip.log" 2>&1 || { tail -20 "$VENV/pip.log" >&2; exit 1; }
fi

# ---- 3. The package and its Python dependencies ------------------------------------------------
extras=""
[[ $DEV == 1 ]] && extras="[dev]"
stamp="$VENV/.kapmonitor-installed$extras"
digest=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
  say "installing kapmonitor$extras and its dependencies into $VENV"
  if ! "$VENV/bin/python" -m pip install -q -e ".$extras" >"$VENV/pip.log" 2>&1; then
    tail -30 "$VENV/pip.log" >&2
    say "pip could not install the package (full log: $VENV/pip.log)"
    exit 1
  fi
  "$VENV/bin/python" -c 'import kapmonitor, PySide6, pyqtgraph, bleak, bumble, sqlite_utils' \
    || { say "the install did not complete"; exit 1; }
  echo "$digest" >"$stamp"
fi
say "ready: $VENV ($("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
