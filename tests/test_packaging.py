"""Packaging: the icons, the launcher, its installer, the bundled font and the PyInstaller bundle.

The bundle test really builds ``dist/kith/`` with packaging/build-linux.sh (about 40 s on two
cores) into ``build/test-bundle/`` (git-ignored; PyInstaller's work folder there is reused by
the next run in the same checkout), then starts the headless node from it with a bare
environment, as a user of the bundle would.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
HICOLOR = ICONS / "hicolor"
DESKTOP = ROOT / "packaging" / "linux" / "kith.desktop"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
BUNDLE_CACHE = ROOT / "build" / "test-bundle"
LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def require_tool(name: str) -> str:
    """The tool's path; CI (setup.sh --dev) must have it, a bare local run may skip."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: packaging/setup.sh --dev installs it")
        pytest.skip(f"{name} is not installed (bash packaging/setup.sh --dev)")
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def desktop_entry(path: Path) -> dict[str, str]:
    entry: dict[str, str] = {}
    group = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            group = line
        elif group == "[Desktop Entry]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            entry[key] = value
    return entry


# --- icons ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_png_icon_at_every_size(size: int) -> None:
    path = HICOLOR / f"{size}x{size}" / "apps" / "kith.png"
    assert path.is_file(), f"missing {path.relative_to(ROOT)}: run packaging/render_icons.py"
    assert png_size(path) == (size, size)


def test_scalable_icon_is_the_app_icon() -> None:
    scalable = HICOLOR / "scalable" / "apps" / "kith.svg"
    assert scalable.read_bytes() == (ICONS / "kith.svg").read_bytes()


def test_windows_and_macos_icons() -> None:
    ico = (ICONS / "kith.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1) and count >= 5
    sides = set()
    for i in range(count):
        width, _h, _c, _r, _p, _b, length, offset = struct.unpack(
            "<BBBBHHII", ico[6 + 16 * i : 22 + 16 * i]
        )
        assert ico[offset : offset + 8] == b"\x89PNG\r\n\x1a\n"
        assert offset + length <= len(ico)
        sides.add(width or 256)
    assert {16, 32, 48, 256} <= sides

    icns = (ICONS / "kith.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    types, pos = set(), 8
    while pos < len(icns):
        kind_bytes, length = icns[pos : pos + 4], struct.unpack(">I", icns[pos + 4 : pos + 8])[0]
        types.add(kind_bytes)
        pos += length
    assert pos == len(icns)
    assert {b"icp4", b"ic07", b"ic08", b"ic09"} <= types


# What another CPU's rasteriser may change: Qt's SIMD paths round antialiased edges and
# gradients by a level or two. A pixel counts as different when a channel is off by more than
# PIXEL_TOLERANCE; at most DIFFERENT_SHARE of them (and one pixel in any case) may be.
PIXEL_TOLERANCE = 24
DIFFERENT_SHARE = 0.001
MEAN_TOLERANCE = 1.5  # mean absolute difference per channel, in levels of 255


def _render_and_compare(svg: str) -> dict[str, list[float]]:
    """Render ``svg`` (text) as render_icons.py does at a few sizes, in a fresh process, and
    compare each with the committed PNG: {size: [mean difference, share of pixels off]}."""
    script = textwrap.dedent(
        """
        import json, os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        sys.path.insert(0, "packaging")
        import render_icons
        from PySide6.QtCore import QByteArray
        from PySide6.QtGui import QGuiApplication, QImage
        app = QGuiApplication([])
        renderer = render_icons.QSvgRenderer(QByteArray(sys.stdin.read().encode()))
        tolerance, out = int(sys.argv[1]), {}
        for size in (16, 48, 256):
            fresh = render_icons.render(renderer, size)
            path = render_icons.HICOLOR / f"{size}x{size}" / "apps" / "kith.png"
            stored = QImage(str(path)).convertToFormat(fresh.format())
            a, b = bytes(fresh.constBits()), bytes(stored.constBits())
            assert len(a) == len(b) == 4 * size * size, path
            total = off = 0
            for i in range(0, len(a), 4):
                diffs = [abs(a[i + k] - b[i + k]) for k in range(4)]
                total += sum(diffs)
                off += max(diffs) > tolerance
            out[size] = [total / len(a), off / (size * size)]
        print(json.dumps(out))
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(PIXEL_TOLERANCE)], cwd=ROOT,
                          input=svg, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results: dict[str, list[float]] = json.loads(done.stdout)
    return results


def _close_enough(mean: float, share: float, size: int) -> bool:
    return mean <= MEAN_TOLERANCE and share * size * size <= max(1, DIFFERENT_SHARE * size * size)


def test_rendered_icons_match_the_svg() -> None:
    """The committed PNGs are renderings of the current SVG (someone who edited it ran
    render_icons.py), up to what another machine's rasteriser changes; the scalable copy
    (test above) is the SVG byte for byte."""
    svg = (ICONS / "kith.svg").read_text(encoding="utf-8")
    for size, (mean, share) in _render_and_compare(svg).items():
        assert _close_enough(mean, share, int(size)), (
            f"{size}px differs from the SVG (mean {mean:.2f}, {share:.2%} of pixels): "
            "run packaging/render_icons.py")


def test_the_icon_comparison_notices_a_small_edit() -> None:
    """The tolerance is not blindness: one inner circle 3 units wider is caught."""
    svg = (ICONS / "kith.svg").read_text(encoding="utf-8")
    edited = svg.replace('<circle cx="172" cy="94" r="11"', '<circle cx="172" cy="94" r="14"')
    assert edited != svg
    results = _render_and_compare(edited)
    mean, share = results["256"]
    assert not _close_enough(mean, share, 256), results


# --- launcher ------------------------------------------------------------------------------


def test_desktop_file_validates() -> None:
    validate = require_tool("desktop-file-validate")
    out = subprocess.run([validate, str(DESKTOP)], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_desktop_file_contents() -> None:
    entry = desktop_entry(DESKTOP)
    assert entry["Name"] == "Kith"
    assert entry["Type"] == "Application"
    assert entry["Exec"] == "kith %u"
    assert entry["Icon"] == "kith"
    assert entry["Terminal"] == "false"
    assert "x-scheme-handler/kith" in entry["MimeType"].split(";")
    assert {"Network", "InstantMessaging", "Chat"} <= set(entry["Categories"].split(";"))
    # ui/shell/app.py: app.setDesktopFileName("kith"); the launcher's file name and WM class match.
    assert entry["StartupWMClass"] == "kith" and DESKTOP.stem == "kith"
    app_py = ROOT / "ui" / "shell" / "app.py"
    assert 'setDesktopFileName("kith")' in app_py.read_text(encoding="utf-8")


def test_install_and_uninstall_launcher(tmp_path: Path) -> None:
    fake = tmp_path / "my apps" / "kith"  # a space: Exec must quote it
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    data, config = tmp_path / "data", tmp_path / "config"
    (config).mkdir()
    (config / "mimeapps.list").write_text(
        "[Default Applications]\ntext/html=browser.desktop\nx-scheme-handler/kith=old.desktop\n"
    )
    env = {**os.environ, "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(config)}
    script = ROOT / "packaging" / "install-linux.sh"

    subprocess.run(["bash", str(script), "--exec", str(fake)], env=env, check=True,
                   capture_output=True, timeout=60)
    installed = data / "applications" / "kith.desktop"
    entry = desktop_entry(installed)
    assert entry["Exec"] == f'"{fake}" %u'
    assert entry["TryExec"] == str(fake)
    for size in SIZES:
        assert png_size(data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "kith.png") == (
            size, size,
        )
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "kith.svg").is_file()
    mimeapps = (config / "mimeapps.list").read_text()
    assert "x-scheme-handler/kith=kith.desktop" in mimeapps
    assert "old.desktop" not in mimeapps and "text/html=browser.desktop" in mimeapps
    if shutil.which("desktop-file-validate"):
        subprocess.run(["desktop-file-validate", str(installed)], check=True)

    subprocess.run(["bash", str(script), "--uninstall"], env=env, check=True,
                   capture_output=True, timeout=60)
    assert not installed.exists()
    assert not list((data / "icons").rglob("kith.*"))
    mimeapps = (config / "mimeapps.list").read_text()
    assert "kith.desktop" not in mimeapps and "text/html=browser.desktop" in mimeapps


def test_setup_compiles_kiths_modules(tmp_path: Path) -> None:
    """setup.sh, run on a copy of the checkout sharing its .venv (so pip has nothing to do),
    leaves beside every module of app/ and ui/ the bytecode Python reads in place of compiling
    it (a timestamp-checked file naming the source's mtime and size), and run again after a
    module changed, that module's anew."""
    venv = ROOT / ".venv"
    stamp = (venv / ".kith-setup-stamp").read_text().split()
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    # Otherwise setup.sh would reinstall Kith from the copy, into the shared .venv.
    assert stamp[0] == digest, "run bash packaging/setup.sh --dev first"
    copy = tmp_path / "kith"
    for part in ("app", "ui", "packaging"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    (copy / ".venv").symlink_to(venv)
    modules = sorted((copy / "app").rglob("*.py")) + sorted((copy / "ui").rglob("*.py"))
    changed = copy / "app" / "core" / "markdown.py"

    for _ in range(2):
        subprocess.run(["bash", str(copy / "packaging" / "setup.sh")], cwd=copy, check=True,
                       capture_output=True, timeout=300)
        for module in modules:
            cached = Path(importlib.util.cache_from_source(str(module)))
            magic, flags, mtime, size = struct.unpack("<4sIII", cached.read_bytes()[:16])
            source = module.stat()
            assert (magic, flags, mtime, size) == (
                importlib.util.MAGIC_NUMBER, 0, int(source.st_mtime), source.st_size), module
        changed.write_text(changed.read_text() + "\n# changed\n")
        later = time.time() + 5
        os.utime(changed, (later, later))


# --- bundled font --------------------------------------------------------------------------


def test_font_and_licence_are_bundled() -> None:
    fonts = ROOT / "resources" / "fonts"
    assert (fonts / "DejaVuSans.ttf").stat().st_size > 100_000
    assert "Bitstream Vera" in (fonts / "LICENSE").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in (fonts / "NotoColorEmoji-LICENSE").read_text(
        encoding="utf-8")


def test_bundled_font_used_only_without_system_fonts(tmp_path: Path) -> None:
    """With an empty fontconfig, configure_application falls back to the bundled DejaVu Sans."""
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        f"<fontconfig><cachedir>{tmp_path / 'cache'}</cachedir></fontconfig>\n"
    )
    script = textwrap.dedent(
        """
        from PySide6.QtGui import QFontInfo, QFontMetrics
        from PySide6.QtWidgets import QApplication
        from ui.shell.app import configure_application
        from ui.style.resources import system_has_fonts
        app = QApplication([])
        before = system_has_fonts()
        configure_application(app)
        print(before, QFontInfo(app.font()).family(),
              QFontMetrics(app.font()).horizontalAdvance("Kith") > 0)
        """
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FONTCONFIG_FILE": str(conf)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "DejaVu", "Sans", "True"]


def system_emoji_font() -> Path:
    """The colour emoji font packaging/setup.sh installs (Debian's fonts-noto-color-emoji)."""
    found = subprocess.run(["fc-match", "-f", "%{file}", "Noto Color Emoji"],
                           capture_output=True, text=True, timeout=30).stdout
    path = Path(found)
    assert path.name == "NotoColorEmoji.ttf", (
        f"no Noto Color Emoji ({found!r}): run bash packaging/setup.sh")
    return path


def test_emoji_have_glyphs(qapp: object) -> None:
    """Emoji in messages and the 📎 of file previews come from a font that has them."""
    from PySide6.QtGui import QFont

    from ui.style.resources import emoji_family

    system_emoji_font()
    for text in ("😀", "📎", "🎉👍🏽", "a 🙂 b"):
        assert emoji_family(QFont(qapp.font()), text) is not None, text  # type: ignore[attr-defined]


def test_bundled_emoji_font_used_only_without_one_on_the_system(tmp_path: Path) -> None:
    """With no fonts but the bundle's (an empty fontconfig), emoji still have glyphs: the
    bundled Noto Color Emoji is loaded and used for them."""
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        shutil.copy(ROOT / "resources" / "fonts" / name, fonts / name)
    shutil.copy(system_emoji_font(), fonts / "NotoColorEmoji.ttf")
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        f"<fontconfig><cachedir>{tmp_path / 'cache'}</cachedir></fontconfig>\n"
    )
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from PySide6.QtWidgets import QApplication
        from ui.style import resources
        app = QApplication([])
        resources.FONTS = Path({str(fonts)!r})
        resources.ensure_ui_font(app)
        before = resources.emoji_family(app.font())
        loaded = resources.ensure_emoji_font(app, Path({str(fonts)!r}))
        print(before, "|", loaded, "|", resources.emoji_family(app.font()))
        """
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FONTCONFIG_FILE": str(conf)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None | Noto Color Emoji | Noto Color Emoji", out.stderr


def test_system_fonts_left_alone(qapp: object) -> None:
    from ui.style.resources import ensure_ui_font, system_has_fonts

    if not system_has_fonts():
        pytest.skip("this machine has no fonts")
    family = qapp.font().family()  # type: ignore[attr-defined]
    assert ensure_ui_font(qapp) is None  # type: ignore[arg-type]
    assert qapp.font().family() == family  # type: ignore[attr-defined]


# --- the PyInstaller bundle ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle() -> Path:
    """Build dist/kith/ once per session into build/test-bundle/ (reused between runs)."""
    if not os.environ.get("CI"):
        pytest.importorskip("PyInstaller", reason="bash packaging/setup.sh --dev installs it")
    dist = BUNDLE_CACHE / "dist"
    out = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build-linux.sh"),
         "--dist", str(dist), "--work", str(BUNDLE_CACHE / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    sys.stdout.write(out.stdout)
    exe = dist / "kith" / "kith"
    assert os.access(exe, os.X_OK)
    return exe


def bare_env(home: Path) -> dict[str, str]:
    """What a user's session would give the bundle: no venv, no PYTHONPATH, no Qt settings."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bundle_version_matches_source(bundle: Path, tmp_path: Path) -> None:
    frozen = subprocess.run([str(bundle), "--version"], env=bare_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    source = subprocess.run([sys.executable, "-m", "app", "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert frozen.returncode == 0, frozen.stderr
    assert frozen.stdout.strip() == source.stdout.strip()
    assert frozen.stdout.startswith("kith ")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bundle_carries_icon_and_font(bundle: Path) -> None:
    internal = bundle.parent / "_internal"
    assert (internal / "resources" / "icons" / "kith.svg").is_file()
    assert (internal / "resources" / "fonts" / "DejaVuSans.ttf").is_file()
    emoji = internal / "resources" / "fonts" / "NotoColorEmoji.ttf"
    assert emoji.stat().st_size > 1_000_000
    assert (internal / "resources" / "fonts" / "NotoColorEmoji-LICENSE").is_file()
    plugins = internal / "PySide6" / "Qt" / "plugins"
    for plugin in ("platforms/libqxcb.so", "platforms/libqoffscreen.so",
                   "imageformats/libqsvg.so", "iconengines/libqsvgicon.so"):
        assert (plugins / plugin).is_file(), plugin


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


@pytest.fixture
def node_proc(bundle: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [str(bundle), "node", "--profile", str(tmp_path / "profile"), "--listen", LOOPBACK,
         "--name", "Bundle"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8", bufsize=1, env=bare_env(tmp_path),
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bundle_headless_node_starts(node_proc: subprocess.Popen[str]) -> None:
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(node_proc.stdout, out), daemon=True).start()
    threading.Thread(target=_lines, args=(node_proc.stderr, err), daemon=True).start()

    def stderr_tail() -> str:
        lines = []
        while not err.empty():
            lines.append(err.get())
        return "".join(lines[-30:])

    events: list[dict[str, object]] = []
    while True:
        try:
            line = out.get(timeout=60)
        except queue.Empty:
            pytest.fail(f"no ready event within 60 s; events {events}; stderr:\n{stderr_tail()}")
        event = json.loads(line)
        events.append(event)
        assert event.get("event") != "error", f"{event}; stderr:\n{stderr_tail()}"
        if event.get("event") == "ready":
            break
    assert event["peer_id"].startswith("12D3KooW")
    assert any(addr.startswith("/ip4/127.0.0.1/tcp/") for addr in event["addrs"])
    assert event["invite"].startswith("kith:contact?")

    assert node_proc.stdin is not None
    node_proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
    node_proc.stdin.flush()
    assert node_proc.wait(timeout=30) == 0, stderr_tail()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bundle_gui_starts_without_system_fonts(bundle: Path, tmp_path: Path) -> None:
    """The window opens from the bundle (offscreen) on a machine with no fonts at all."""
    profile = tmp_path / "profile"
    env = bare_env(tmp_path)
    created = subprocess.run(  # a profile with a name, so no first-run dialog waits for input
        [str(bundle), "node", "--profile", str(profile), "--listen", LOOPBACK, "--name", "Ada"],
        input=json.dumps({"cmd": "quit"}) + "\n", env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        f"<fontconfig><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>\n"
    )
    gui_env = {**env, "QT_QPA_PLATFORM": "offscreen", "FONTCONFIG_FILE": str(conf)}
    proc = subprocess.Popen(
        [str(bundle), "--profile", str(profile), "--listen", LOOPBACK],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=gui_env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        while not any("listening as" in line and "127.0.0.1" in line for line in seen):
            try:
                seen.append(lines.get(timeout=60))
            except queue.Empty:
                pytest.fail("the bundle's window did not start its node:\n" + "".join(seen))
        # Let the window load its lists; then nothing may have gone wrong so far. (What is
        # logged while it shuts down, on terminate, is the app's business, not the bundle's.)
        deadline = time.monotonic() + 3
        while (remaining := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=remaining))
        assert proc.poll() is None, "".join(seen)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = "".join(seen)
    assert "Traceback" not in text, text
    assert "using the bundled DejaVu Sans" in text, text
    assert "using the bundled Noto Color Emoji" in text, text
