#!/usr/bin/env bash
# Build Kith's one-folder bundle with PyInstaller: dist/kith/kith (plus its _internal/).
#
#   bash packaging/build-linux.sh [--dist DIR] [--work DIR] [--clean]
#
#   --dist DIR   where the bundle goes (default: <repo>/dist; the bundle is DIR/kith/)
#   --work DIR   PyInstaller's work folder, reused between builds (default: <repo>/build/pyinstaller)
#   --clean      drop PyInstaller's caches first
#
# Uses <repo>/.venv (created by packaging/setup.sh when missing) and installs the `bundle`
# extra (PyInstaller) into it when PyInstaller is not there yet. Prints the bundle's size.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DIST="$ROOT/dist"
WORK="$ROOT/build/pyinstaller"
CLEAN=()
while (($#)); do
    case "$1" in
        --dist) DIST="$(realpath -m "$2")"; shift 2 ;;
        --work) WORK="$(realpath -m "$2")"; shift 2 ;;
        --clean) CLEAN=(--clean); shift ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "build-linux.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

say() { printf 'build: %s\n' "$*"; }

if [[ ! -x .venv/bin/kith ]]; then
    bash packaging/setup.sh
fi
VPY="$ROOT/.venv/bin/python"
if ! "$VPY" -c 'import PyInstaller' >/dev/null 2>&1; then
    say "installing the bundle extra (PyInstaller) into .venv"
    "$VPY" -m pip install --disable-pip-version-check -q -e '.[bundle]'
fi

start=$SECONDS
say "PyInstaller $("$VPY" -m PyInstaller --version) -> $DIST/kith"
mkdir -p "$WORK"
"$VPY" -m PyInstaller --noconfirm --log-level WARN "${CLEAN[@]}" \
    --distpath "$DIST" --workpath "$WORK" packaging/kith.spec >"$WORK/build.log" 2>&1 || {
    tail -n 60 "$WORK/build.log" >&2
    echo "build-linux.sh: PyInstaller failed (full log: $WORK/build.log)" >&2
    exit 1
}
[[ -x "$DIST/kith/kith" ]] || { echo "build-linux.sh: $DIST/kith/kith is missing" >&2; exit 1; }
say "built $DIST/kith/kith in $((SECONDS - start)) s; $("$DIST/kith/kith" --version)"
say "size: $(du -sh "$DIST/kith" | cut -f1) ($(find "$DIST/kith" -type f | wc -l) files)"
