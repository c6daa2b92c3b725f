"""The sandbox's settings as bubblewrap options and as a Seatbelt profile (which cannot run
here: its text is what is tested), and what happens when a sandbox cannot start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from looper_engine.sandbox import SandboxSettings, recorded_kind, sandbox_note
from looper_engine.sandbox.profile import bwrap_args, seatbelt_profile


def test_bwrap_args_make_the_workspace_the_only_writable_place(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    ws = tmp_path / "ws"
    ws.mkdir()
    args = bwrap_args(SandboxSettings(), ws)
    assert args[:3] == ["--ro-bind", "/", "/"]
    writable = [args[i + 1] for i, a in enumerate(args) if a == "--bind"]
    assert writable == [str(ws.resolve())]
    assert ["--tmpfs", "/tmp"] == args[args.index("/tmp") - 1 : args.index("/tmp") + 1]
    assert ["--tmpfs", str(home.resolve())] == args[args.index(str(home.resolve())) - 1 : args.index(str(home.resolve())) + 1]
    assert "--unshare-all" in args and "--share-net" not in args
    assert "--die-with-parent" in args and "--cap-drop" in args
    assert "--share-net" in bwrap_args(SandboxSettings(network=True), ws)


def test_seatbelt_profile_denies_network_and_writes_outside(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    ws = tmp_path / 'my "ws"'
    ws.mkdir()
    text = seatbelt_profile(SandboxSettings(), ws, tmp_path / "tmp")
    lines = text.splitlines()
    assert lines[:2] == ["(version 1)", "(deny default)"]
    assert "(deny network*)" in lines and "(allow network*)" not in lines
    assert f'(deny file-read* (subpath "{home.resolve()}"))' in lines
    writes = [ln for ln in lines if ln.startswith("(allow file-write*")]
    assert len(writes) == 1
    assert '(subpath "' + str(ws.resolve()).replace('"', '\\"') + '")' in writes[0]
    assert f'(subpath "{tmp_path / "tmp"}")' in writes[0]
    assert text.count("(") == text.count(")")
    assert "(allow network*)" in seatbelt_profile(SandboxSettings(network=True), ws, tmp_path / "tmp")


def test_recorded_kind_and_the_mixed_table_note() -> None:
    assert recorded_kind({"sandbox": "bwrap"}) == "bwrap"
    assert recorded_kind({}) == "none"  # recorded before the sandbox existed
    assert sandbox_note(["bwrap", "bwrap"]) == "" and sandbox_note(["none"]) == ""
    assert "1 of 2 episodes ran unsandboxed" in sandbox_note(["bwrap", "none"])


def _looper(args: list[str], env_path: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "looper_engine.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd,
        env={"PATH": env_path, "HOME": str(cwd)},
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux")
def test_looper_run_stops_with_one_line_when_the_sandbox_cannot_start(tmp_path: Path) -> None:
    done = _looper(["run", "--quiet", "--sandbox", "seatbelt", "--tasks", "off_by_one/date_range"], "/usr/bin:/bin", tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sandbox" in lines[0] and "--sandbox none" in lines[0]
    assert not (tmp_path / "looper.db").exists()  # nothing ran, nothing was recorded


def test_the_tui_form_request_carries_the_sandbox_and_the_state_flags_unsandboxed() -> None:
    from looper_engine.episode_view import fold_episode
    from looper_engine.events import EpisodeStarted
    from looper_tui.lab import RunRequest

    assert RunRequest().agent_config().sandbox == "auto"
    assert RunRequest(sandbox="none").agent_config().sandbox == "none"

    def started(config: dict) -> EpisodeStarted:
        return EpisodeStarted(
            episode_id="ep-1", task_id="t", suite="s", family="f", model="m", model_label="m", scripted=True,
            system_prompt="", task_prompt="", max_steps=3, token_budget=512, config=config,
        )

    confined = fold_episode([started({"sandbox": "bwrap"})], "ep-1")
    open_ = fold_episode([started({"sandbox": "none"})], "ep-1")
    assert not confined.unsandboxed and open_.unsandboxed


def test_experiment_files_set_the_sandbox_and_reject_unknown_kinds() -> None:
    from looper_engine.errors import UserError
    from looper_engine.evaluation.experiment import parse_experiment

    base = 'model = "scripted:oracle"\nchunk_size = 2\n[stream]\nfamilies = ["off_by_one"]\nper_family = 2\n'
    spec = parse_experiment(base + '[agent]\nsandbox = "none"\nnetwork = true\n[[arms]]\nname = "base"\n')
    cfg = spec.arms[0].agent_config(spec.limits, 0, spec.agent)
    assert (cfg.sandbox, cfg.network) == ("none", True)
    with pytest.raises(UserError, match="sandbox"):
        parse_experiment(base + '[agent]\nsandbox = "docker"\n[[arms]]\nname = "base"\n', "exp")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux")
def test_looper_show_labels_unsandboxed_episodes_and_a_mixed_list(tmp_path: Path) -> None:
    import os

    from looper_engine.sandbox import SandboxUnavailable, resolve_mode

    try:
        resolve_mode("bwrap")
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))

    path = os.environ["PATH"]
    one = ["--quiet", "--rate", "0", "--tasks", "off_by_one/date_range"]
    assert _looper(["run", *one, "--sandbox", "none"], path, tmp_path).returncode == 0
    shown = _looper(["show"], path, tmp_path)
    assert shown.returncode == 0 and "UNSANDBOXED" in shown.stdout
    assert _looper(["run", *one], path, tmp_path).returncode == 0
    shown = _looper(["show"], path, tmp_path)
    assert "UNSANDBOXED" not in shown.stdout and "sandbox bwrap" in shown.stdout
    listed = _looper(["show", "--list"], path, tmp_path)
    assert "1 of 2 episodes ran unsandboxed" in " ".join(listed.stdout.split())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux")
def test_no_user_namespaces_is_one_line_naming_the_cause_and_the_fix(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    bwrap = fake / "bwrap"
    # what bubblewrap prints where Ubuntu 24.04's AppArmor rule forbids unprivileged namespaces
    bwrap.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    bwrap.chmod(0o755)
    done = _looper(["run", "--quiet", "--tasks", "off_by_one/date_range"], f"{fake}:/usr/bin:/bin", tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "user namespaces" in lines[0] and "apparmor_restrict_unprivileged_userns" in lines[0]
    assert "--sandbox none" in lines[0]
    assert not (tmp_path / "looper.db").exists()
    unconfined = _looper(["run", "--quiet", "--sandbox", "none", "--tasks", "off_by_one/date_range"], f"{fake}:/usr/bin:/bin", tmp_path)
    assert unconfined.returncode == 0, unconfined.stderr
