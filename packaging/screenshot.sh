#!/usr/bin/env bash
# Take a screenshot of the real Kith main window under a private Xvfb display.
#
#   bash packaging/screenshot.sh OUT.png [kith args...]
#
# Uses a throw-away profile unless --profile DIR is among the args, and listens
# only on 127.0.0.1. The exit code is that of `python -m ui.shell.screenshot`.
# KITH_SCREENSHOT_TIMEOUT (seconds, default 180) bounds the whole run.
set -euo pipefail

usage() {
    echo "usage: bash packaging/screenshot.sh OUT.png [kith args...]"
}

die() {
    printf 'screenshot: ERROR: %s\n' "$*" >&2
    exit 1
}

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    usage >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"

abspath() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$PWD/$1" ;;
    esac
}

# Paths are taken relative to the caller's directory; the app runs from the repo root.
OUT="$(abspath "$1")"
shift

have_profile=0
have_name=0
have_listen=0
EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile)
            [[ $# -ge 2 ]] || die "--profile needs a directory"
            have_profile=1
            EXTRA+=(--profile "$(abspath "$2")")
            shift 2
            continue
            ;;
        --profile=*)
            have_profile=1
            EXTRA+=("--profile=$(abspath "${1#--profile=}")")
            ;;
        --name | --name=*)
            have_name=1
            EXTRA+=("$1")
            ;;
        --listen | --listen=*)
            have_listen=1
            EXTRA+=("$1")
            ;;
        *) EXTRA+=("$1") ;;
    esac
    shift
done

[[ -x "$PY" ]] || die "$PY not found; run: bash packaging/setup.sh --dev"
command -v Xvfb >/dev/null 2>&1 || die "Xvfb not found; run: bash packaging/setup.sh --dev"
mkdir -p "$(dirname "$OUT")"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/kith-screenshot.XXXXXX")"
XVFB_PID=""
APP_PID=""

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ -n "$APP_PID" ]] && kill -0 "$APP_PID" 2>/dev/null; then
        kill -TERM "$APP_PID" 2>/dev/null || true
        wait "$APP_PID" 2>/dev/null || true
    fi
    if [[ -n "$XVFB_PID" ]] && kill -0 "$XVFB_PID" 2>/dev/null; then
        kill -TERM "$XVFB_PID" 2>/dev/null || true
        wait "$XVFB_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- Xvfb on a free display ----------------------------------------------------
# -displayfd makes Xvfb pick a free display number itself and report it, so
# concurrent runs cannot collide. The file exists before Xvfb starts: the redirection
# below happens in the background job, which the loop could otherwise read before.
: >"$TMP/display"
Xvfb -displayfd 3 -screen 0 1920x1200x24 -nolisten tcp \
    3>"$TMP/display" >"$TMP/xvfb.log" 2>&1 &
XVFB_PID=$!

DISPLAY_NUM=""
for _ in $(seq 1 100); do
    if ! kill -0 "$XVFB_PID" 2>/dev/null; then
        cat "$TMP/xvfb.log" >&2
        die "Xvfb exited during start-up"
    fi
    DISPLAY_NUM="$(tr -dc '0-9' <"$TMP/display")"
    [[ -n "$DISPLAY_NUM" ]] && break
    sleep 0.1
done
[[ -n "$DISPLAY_NUM" ]] || die "Xvfb did not report a display within 10 s"
echo "screenshot: Xvfb on :$DISPLAY_NUM (pid $XVFB_PID)"

# --- Run the app ---------------------------------------------------------------
ARGS=(--out "$OUT")
if ((!have_profile)); then
    mkdir -m 700 "$TMP/profile"
    ARGS+=(--profile "$TMP/profile")
fi
if ((!have_name)); then
    ARGS+=(--name "Ada")
fi
if ((!have_listen)); then
    ARGS+=(--listen /ip4/127.0.0.1/tcp/0)
fi
ARGS+=("${EXTRA[@]}")

mkdir -m 700 "$TMP/runtime"
cd "$ROOT"
TIMEOUT=(timeout --kill-after=10 "${KITH_SCREENSHOT_TIMEOUT:-180}")
command -v timeout >/dev/null 2>&1 || TIMEOUT=()

env -u WAYLAND_DISPLAY DISPLAY=":$DISPLAY_NUM" QT_QPA_PLATFORM=xcb \
    XDG_RUNTIME_DIR="$TMP/runtime" \
    "${TIMEOUT[@]}" "$PY" -m ui.shell.screenshot "${ARGS[@]}" &
APP_PID=$!
rc=0
wait "$APP_PID" || rc=$?
APP_PID=""

if ((rc == 124)); then
    echo "screenshot: timed out after ${KITH_SCREENSHOT_TIMEOUT:-180} s" >&2
elif ((rc == 0)); then
    echo "screenshot: saved $OUT"
else
    echo "screenshot: ui.shell.screenshot failed with exit code $rc" >&2
fi
exit "$rc"
