"""The installed lab is the whole lab: a wheel carries the themes and the styles, so a user
who installs it gets looper-light when they ask for it, not Textual's default.

Offline: the wheel is built without build isolation, and the fresh venv takes its
dependencies from this venv's site-packages through a .pth file (`--no-deps`)."""

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OPEN_LIGHT = """
import asyncio, sys
from pathlib import Path
import looper_tui
from looper_tui.app import LooperApp

assert Path(looper_tui.__file__).is_relative_to(Path(sys.prefix)), looper_tui.__file__

async def main():
    app = LooperApp(Path(sys.argv[1]) / "lab.db", theme="looper-light", config_folder=Path(sys.argv[1]) / "cfg")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        print(app.theme, app.current_theme.dark, sorted(app.looper_themes()))
        print("notes:", [n.message for n in app._notifications])

asyncio.run(main())
"""


def test_a_wheel_installed_in_a_fresh_venv_opens_the_lab_in_looper_light(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("looper-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "looper_tui/theme_files/looper-light.toml" in names
    assert "looper_tui/screens/help.tcss" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    # This venv's packages come after the fresh venv's own, so `looper_tui` is the wheel's.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert installed.returncode == 0, installed.stderr

    opened = subprocess.run(
        [str(python), "-c", OPEN_LIGHT, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert opened.returncode == 0, opened.stderr
    theme_line, notes_line = opened.stdout.strip().splitlines()[-2:]
    assert theme_line == "looper-light False ['looper-dark', 'looper-light']"
    assert "unknown theme" not in notes_line
    helped = subprocess.run([str(env_dir / "bin" / "looper"), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "usage: looper" in helped.stdout
