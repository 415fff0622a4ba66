#!/usr/bin/env bash
# Set up Kith in a virtual environment at <repo>/.venv.
#
#   bash packaging/setup.sh          runtime only (then run .venv/bin/kith)
#   bash packaging/setup.sh --dev    also test and development tools
#
# Installs the Debian/Ubuntu system libraries Qt needs (only the missing ones),
# creates .venv with Python 3.11 or newer and installs Kith into it in editable
# mode. Safe to run again: a second run with an unchanged pyproject.toml only
# checks and returns.
set -euo pipefail

usage() {
    echo "usage: bash packaging/setup.sh [--dev]"
}

MODE=runtime
for arg in "$@"; do
    case "$arg" in
        --dev) MODE=dev ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            echo "setup.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

say() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'setup: ERROR: %s\n' "$*" >&2
    exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -f pyproject.toml ]] || die "no pyproject.toml in $ROOT"

VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
STAMP="$VENV/.kith-setup-stamp"

# --- Python >= 3.11 -------------------------------------------------------------
# Run each candidate: a name on PATH may be a shim for a version that is not
# installed (pyenv), so `command -v` alone is not enough.
is_py311() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

PYTHON=""
for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && is_py311 "$cand"; then
        PYTHON="$(command -v "$cand")"
        break
    fi
done
[[ -n "$PYTHON" ]] || die "Kith needs Python 3.11 or newer, and none of python3.13, python3.12,
python3.11 or python3 on PATH is one. Install it (Debian/Ubuntu: sudo apt-get install python3)
and run this script again."
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
say "using $PYTHON (Python $PYVER), mode: $MODE"

# --- System packages (Debian/Ubuntu) ------------------------------------------
# Qt (PySide6) needs these for an X11 window; fonts-dejavu-core so text is not boxes,
# fonts-noto-color-emoji so emoji are not boxes either.
SYS_PKGS=(
    libgl1 libegl1 libxkbcommon0 libglib2.0-0 libfontconfig1 libdbus-1-3
    libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xkb1
    libxkbcommon-x11-0 libxcb-render-util0 libxcb-image0 libxcb-randr0
    fonts-dejavu-core fonts-noto-color-emoji
)
# `python -m venv` needs ensurepip, which Debian ships separately.
if ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
    SYS_PKGS=(python3-venv "${SYS_PKGS[@]}")
fi
# Headless display for screenshots and the display tests; desktop-file-validate for
# tests/test_packaging.py; ip (network namespaces) and nft (NAT routers in them) for the
# tests/test_*netns*.py and tests/test_lan.py; a private D-Bus bus for the desktop
# notification tests (tests/notification_service.py).
if [[ "$MODE" == dev ]]; then
    SYS_PKGS+=(xvfb xauth desktop-file-utils iproute2 nftables dbus-daemon)
fi

pkg_installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]]
}

if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for pkg in "${SYS_PKGS[@]}"; do
        # Ubuntu 24.04+ renamed some libraries with a t64 suffix (libglib2.0-0t64).
        if ! pkg_installed "$pkg" && ! pkg_installed "${pkg}t64"; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} > 0)); then
        SUDO=()
        can_install=1
        if [[ "$(id -u)" -ne 0 ]]; then
            if command -v sudo >/dev/null 2>&1; then
                SUDO=(sudo)
            else
                can_install=0
            fi
        fi
        if ((can_install)); then
            say "installing system packages: ${missing[*]}"
            apt_log="$(mktemp "${TMPDIR:-/tmp}/kith-setup-apt.XXXXXX")"
            if "${SUDO[@]}" apt-get update -qq >"$apt_log" 2>&1 &&
                "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -qq --no-install-recommends "${missing[@]}" \
                    >>"$apt_log" 2>&1; then
                say "system packages installed"
            else
                tail -n 30 "$apt_log" >&2
                warn "apt-get could not install: ${missing[*]}"
                warn "Kith may fail to open its window until they are installed."
            fi
            rm -f "$apt_log"
        else
            warn "not root and no sudo; please install these packages yourself:"
            warn "  apt-get install ${missing[*]}"
        fi
    fi
else
    say "note: apt-get not found (not Debian/Ubuntu); skipping system packages."
    say "      Qt needs OpenGL/EGL, xkbcommon(-x11), fontconfig, dbus and the xcb-cursor,"
    say "      icccm, keysyms, shape, xkb, render-util, image and randr libraries;"
    if [[ "$MODE" == dev ]]; then
        say "      --dev also needs Xvfb, xauth, desktop-file-utils, iproute2 and nftables."
    fi
    say "      install them with your distribution's package manager if Kith fails to start."
fi

# --- Virtual environment -------------------------------------------------------
venv_ok() {
    [[ -x "$VPY" ]] && is_py311 "$VPY" && "$VPY" -m pip --version >/dev/null 2>&1
}

if [[ -d "$VENV" ]] && ! venv_ok; then
    say "$VENV is broken or too old; recreating it"
    rm -rf "$VENV"
fi
if [[ ! -d "$VENV" ]]; then
    say "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        die "could not create the virtual environment. On Debian/Ubuntu install
python3-venv (or python$PYVER-venv) and run this script again."
    fi
    venv_ok || die "$VENV was created but its python does not work"
fi

# --- Install Kith ----------------------------------------------------------------
file_sha256() {
    "$VPY" -c 'import hashlib, sys
with open(sys.argv[1], "rb") as f:
    print(hashlib.sha256(f.read()).hexdigest())' "$1"
}

want_stamp="$(file_sha256 pyproject.toml) $MODE"
have_stamp="$(cat "$STAMP" 2>/dev/null || true)"
# A dev install is a superset of the runtime one.
runtime_ok_stamp="$(file_sha256 pyproject.toml) dev"

if [[ -x "$VENV/bin/kith" ]] &&
    [[ "$have_stamp" == "$want_stamp" ||
        ("$MODE" == runtime && "$have_stamp" == "$runtime_ok_stamp") ]]; then
    say "Python packages up to date (pyproject.toml unchanged)"
else
    rm -f "$STAMP"
    # pip's full output goes to a log; it is shown when something fails.
    PIP_LOG="$VENV/.kith-setup-pip.log"
    : >"$PIP_LOG"
    pip_quiet() {
        if ! "$VPY" -m pip --disable-pip-version-check "$@" >>"$PIP_LOG" 2>&1; then
            tail -n 60 "$PIP_LOG" >&2
            die "pip $* failed (full log: $PIP_LOG)"
        fi
    }
    say "upgrading pip"
    pip_quiet install --upgrade pip
    if [[ "$MODE" == dev ]]; then
        target='.[dev]'
    else
        target='.'
    fi
    say "installing Kith ($target) into .venv; the first time this takes a few minutes"
    pip_quiet install -e "$target"
    # pip can report dependency conflicts and still succeed: show them.
    grep -E '^ERROR' "$PIP_LOG" >&2 || true
    printf '%s\n' "$want_stamp" >"$STAMP"
fi

[[ -x "$VENV/bin/kith" ]] || die "$VENV/bin/kith is missing after installation"

# Kith's own modules compiled to bytecode, as pip compiles an installed package (an editable
# install leaves them as source): where Python may not write its cache (PYTHONDONTWRITEBYTECODE,
# a read-only checkout), each start of the window compiled about 180 modules, 0.3 s of CPU and
# 1.4 MiB of memory it kept. Files already compiled and unchanged are skipped.
if ! "$VPY" -m compileall -q --invalidation-mode timestamp app ui >/dev/null; then
    warn "Kith's modules could not all be compiled to bytecode; they run from source"
fi
say "done. Launch Kith with: .venv/bin/kith"
if [[ "$MODE" == dev ]]; then
    say "run the tests with:   .venv/bin/python -m pytest"
fi
