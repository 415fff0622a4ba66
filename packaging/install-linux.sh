#!/usr/bin/env bash
# Put Kith in your desktop's menu and make it the handler of kith: links (current user only).
#
#   bash packaging/install-linux.sh [--exec PATH]     install or update the launcher
#   bash packaging/install-linux.sh --uninstall        remove it again
#
# The launcher runs PATH (default: the bundle dist/kith/kith when it has been built,
# otherwise .venv/bin/kith from packaging/setup.sh). Writes:
#   $XDG_DATA_HOME/applications/kith.desktop              (default ~/.local/share/...)
#   $XDG_DATA_HOME/icons/hicolor/<size>/apps/kith.{png,svg}
#   x-scheme-handler/kith=kith.desktop in $XDG_CONFIG_HOME/mimeapps.list (via xdg-mime if present)
# No root needed; nothing outside those folders is touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
CONFIG="${XDG_CONFIG_HOME:-$HOME/.config}"
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"
DESKTOP="$APPS/kith.desktop"
SCHEME="x-scheme-handler/kith"

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

MODE=install
EXEC=""
while (($#)); do
    case "$1" in
        --exec) EXEC="${2:-}"; shift 2 || die "--exec needs a path" ;;
        --uninstall) MODE=uninstall; shift ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# Remove (uninstall) our default-handler line from mimeapps.list, keeping everything else.
drop_mime_default() {
    local list="$CONFIG/mimeapps.list"
    [[ -f "$list" ]] || return 0
    awk -v key="$SCHEME=kith.desktop" '$0 != key' "$list" >"$list.kith-tmp" && mv "$list.kith-tmp" "$list"
}

# Add our default-handler line under [Default Applications] (when xdg-mime is missing).
set_mime_default() {
    local list="$CONFIG/mimeapps.list"
    mkdir -p "$CONFIG"
    touch "$list"
    awk -v scheme="$SCHEME" -v line="$SCHEME=kith.desktop" '
        BEGIN { done = 0 }
        /^\[/ { if (in_default && !done) { print line; done = 1 }
                in_default = ($0 == "[Default Applications]") }
        { if (in_default && index($0, scheme "=") == 1) next; print }
        END { if (!done) { if (!in_default) print "[Default Applications]"; print line } }
    ' "$list" >"$list.kith-tmp" && mv "$list.kith-tmp" "$list"
}

refresh_caches() {
    if have update-desktop-database; then update-desktop-database -q "$APPS" || true; fi
    if have gtk-update-icon-cache && [[ -f "$ICONS/index.theme" ]]; then
        gtk-update-icon-cache -q -t -f "$ICONS" || true
    fi
    touch "$ICONS" 2>/dev/null || true # icon themes notice new files by the folder's mtime
}

if [[ "$MODE" == uninstall ]]; then
    rm -f "$DESKTOP"
    find "$ICONS" -path '*/apps/kith.png' -delete 2>/dev/null || true
    rm -f "$ICONS/scalable/apps/kith.svg"
    drop_mime_default
    [[ -d "$APPS" ]] && refresh_caches
    say "removed the Kith launcher, its icons and the kith: link handler"
    exit 0
fi

if [[ -z "$EXEC" ]]; then
    if [[ -x "$ROOT/dist/kith/kith" ]]; then
        EXEC="$ROOT/dist/kith/kith"
    elif [[ -x "$ROOT/.venv/bin/kith" ]]; then
        EXEC="$ROOT/.venv/bin/kith"
    else
        die "nothing to launch: build the bundle (bash packaging/build-linux.sh) or set up
.venv (bash packaging/setup.sh) first, or pass --exec PATH"
    fi
fi
EXEC="$(realpath "$EXEC")" || die "no such file: $EXEC"
[[ -x "$EXEC" ]] || die "not executable: $EXEC"
case "$EXEC" in
    *'"'* | *'`'* | *'$'* | *\\*) die "the path $EXEC has characters a launcher cannot quote" ;;
esac

# Icons: every rendered size plus the SVG, in the freedesktop hicolor layout.
SRC_ICONS="$ROOT/resources/icons/hicolor"
[[ -d "$SRC_ICONS" ]] || die "missing $SRC_ICONS"
for png in "$SRC_ICONS"/*/apps/kith.png; do
    size="$(basename "$(dirname "$(dirname "$png")")")"
    install -D -m 0644 "$png" "$ICONS/$size/apps/kith.png"
done
install -D -m 0644 "$SRC_ICONS/scalable/apps/kith.svg" "$ICONS/scalable/apps/kith.svg"

# The launcher, with Exec/TryExec pointing at this Kith (quoted: the path may have spaces).
mkdir -p "$APPS"
sed -e "s|^Exec=kith |Exec=\"$EXEC\" |" -e "s|^TryExec=kith\$|TryExec=$EXEC|" \
    "$ROOT/packaging/linux/kith.desktop" >"$DESKTOP.kith-tmp"
chmod 0644 "$DESKTOP.kith-tmp"
mv "$DESKTOP.kith-tmp" "$DESKTOP"
if have desktop-file-validate; then
    desktop-file-validate "$DESKTOP" || die "the installed $DESKTOP does not validate"
fi

# kith: links open in Kith.
if have xdg-mime; then
    XDG_CONFIG_HOME="$CONFIG" xdg-mime default kith.desktop "$SCHEME" || set_mime_default
else
    set_mime_default
fi
refresh_caches

say "launcher: $DESKTOP -> $EXEC"
say "icons:    $ICONS/{16x16..512x512,scalable}/apps/"
say "kith: links now open in Kith (remove with: bash packaging/install-linux.sh --uninstall)"
