"""LoRA training on the real mlx-lm with the tiny model (float32, CPU)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import mlx_lm
import pytest

from looper_engine.consolidation.adapter_files import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    read_adapter_config,
    verify_adapter_loads,
)
from looper_engine.consolidation.train import (
    TrainConfig,
    TrainProgressInfo,
    TrainResult,
    data_stats,
    find_checkpoint,
    split_rows,
    train_adapter,
)
from looper_engine.errors import UserError

SMALL = TrainConfig(iters=6, steps_per_report=1, steps_per_eval=3, save_every=3)


def greedy_answers(model_path: Path, adapter: Path | None, rows: list[dict[str, Any]]) -> list[str]:
    model, tok = mlx_lm.load(str(model_path), adapter_path=str(adapter) if adapter else None)
    out = []
    for row in rows:
        prompt = tok.apply_chat_template(row["messages"][:-1], add_generation_prompt=True)
        out.append(mlx_lm.generate(model, tok, prompt, max_tokens=16))
    return out


REPORTS: list[TrainProgressInfo] = []


@pytest.fixture(scope="module")
def trained(
    tiny_model: Path, rows: list, heldout: list, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    return train_adapter(
        tiny_model,
        rows,
        heldout,
        tmp_path_factory.mktemp("trained") / "adapter",
        TrainConfig(iters=40, steps_per_eval=20, save_every=20),
        on_progress=REPORTS.append,
    )


def test_training_lowers_the_loss_and_teaches_the_tool_call(
    trained: TrainResult, tiny_model: Path, rows: list
) -> None:
    assert trained.status == "finished" and trained.iterations == 40
    vals = [p for p in trained.curve if p.val_loss is not None]
    assert [p.iteration for p in vals] == [0, 20, 40]
    assert vals[-1].val_loss < vals[0].val_loss / 4
    trains = [p.train_loss for p in trained.curve if p.train_loss is not None]
    assert trains[-1] < trains[0] / 4
    assert trained.tokens > 0 and trained.tokens_per_second and trained.peak_memory_gb

    expected = [r["messages"][-1]["content"] for r in rows]
    before = greedy_answers(tiny_model, None, rows)
    after = greedy_answers(tiny_model, trained.adapter_dir, rows)
    assert sum(a.startswith(e) for a, e in zip(before, expected, strict=True)) == 0
    assert sum(a.startswith(e) for a, e in zip(after, expected, strict=True)) >= 14


def test_progress_reports_count_up_to_the_end_with_speed_and_eta(trained: TrainResult) -> None:
    train_reports = [r for r in REPORTS if r.train_loss is not None]
    assert [r.iteration for r in train_reports] == list(range(5, 41, 5))
    assert all(r.iterations == 40 for r in REPORTS)
    assert all(r.tokens_per_second and r.tokens_per_second > 0 for r in train_reports)
    assert train_reports[-1].eta_s == 0.0 and train_reports[0].eta_s > 0
    assert train_reports[-1].trained_tokens == trained.tokens
    assert [r.iteration for r in REPORTS if r.val_loss is not None] == [0, 20, 40]


def test_the_adapter_is_in_mlx_lm_layout_and_checkpoints_are_loadable(
    trained: TrainResult, tiny_model: Path
) -> None:
    adapter = trained.adapter_dir
    assert adapter is not None
    cfg = json.loads((adapter / ADAPTER_CONFIG).read_text())
    assert cfg["fine_tune_type"] == "lora"
    assert cfg["num_layers"] == 2
    assert cfg["lora_parameters"]["rank"] == 16 and cfg["lora_parameters"]["scale"] == 20.0
    assert read_adapter_config(adapter).looper["train_samples"] == 16
    verify_adapter_loads(tiny_model, adapter)
    ckpts = sorted(p.name for p in (adapter / "checkpoints").iterdir())
    assert ckpts == ["it-0000020", "it-0000040"]
    verify_adapter_loads(tiny_model, adapter / "checkpoints" / "it-0000020")
    assert not [p for p in adapter.iterdir() if p.name.startswith(".")], "scratch left behind"


def test_cancel_keeps_checkpoints_and_resume_continues_the_same_run(
    tiny_model: Path, rows: list, heldout: list, tmp_path: Path
) -> None:
    uninterrupted = train_adapter(tiny_model, rows, heldout, tmp_path / "full", SMALL)

    stop = threading.Event()

    def stop_after_4(info: TrainProgressInfo) -> None:
        if info.iteration >= 4:
            stop.set()

    run = tmp_path / "run"
    cancelled = train_adapter(tiny_model, rows, heldout, run, SMALL, on_progress=stop_after_4, cancel=stop)
    assert cancelled.status == "cancelled" and cancelled.adapter_dir is None
    assert cancelled.iterations == 4
    assert not (run / ADAPTER_WEIGHTS).exists() and not (run / ADAPTER_CONFIG).exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["it-0000003", "it-0000004"]
    assert find_checkpoint(run) == run / "checkpoints" / "it-0000004"

    resumed = train_adapter(tiny_model, rows, heldout, run, SMALL, resume_from=run)
    assert resumed.status == "finished" and resumed.iterations == 6
    assert [p.iteration for p in resumed.curve] == list(range(0, 7))
    # Same batches in the same order, Adam state restored: the resumed run is the same run.
    for a, b in zip(resumed.curve, uninterrupted.curve, strict=True):
        assert a.iteration == b.iteration
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-4)
    assert resumed.tokens == uninterrupted.tokens
    verify_adapter_loads(tiny_model, run)


def test_a_cancel_before_the_first_step_writes_nothing(tiny_model: Path, rows: list, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    result = train_adapter(tiny_model, rows, [], tmp_path / "x", SMALL, cancel=stop)
    assert result.status == "cancelled" and result.iterations == 0
    assert not (tmp_path / "x" / ADAPTER_WEIGHTS).exists()
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_never_overwrites_an_adapter(trained: TrainResult, tiny_model: Path, rows: list) -> None:
    adapter = trained.adapter_dir
    assert adapter is not None
    before = (adapter / ADAPTER_WEIGHTS).read_bytes()
    with pytest.raises(UserError, match="already holds an adapter"):
        train_adapter(tiny_model, rows, [], adapter, SMALL)
    assert (adapter / ADAPTER_WEIGHTS).read_bytes() == before


async def test_training_in_a_worker_thread_leaves_the_event_loop_running_and_prints_nothing(
    tiny_model: Path, rows: list, heldout: list, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        result = await asyncio.to_thread(
            train_adapter,
            tiny_model,
            rows,
            heldout,
            tmp_path / "bg",
            TrainConfig(iters=3, steps_per_report=1),
        )
    finally:
        done.set()
        await task
    assert result.status == "finished"
    assert ticks > 1
    out, err = capfd.readouterr()
    assert out == ""
    assert "iter" not in err and "train_loss" not in err


def test_bad_input_is_a_user_error(tiny_model: Path, rows: list, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no training rows"):
        train_adapter(tiny_model, [], [], tmp_path / "a", SMALL)
    user_last = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(UserError, match="row 2: the last message must be the assistant"):
        train_adapter(tiny_model, [rows[0], user_last], [], tmp_path / "a", SMALL)
    with pytest.raises(UserError, match="no config.json"):
        train_adapter(tmp_path / "missing", rows, [], tmp_path / "a", SMALL)
    with pytest.raises(UserError, match="no training checkpoint"):
        train_adapter(tiny_model, rows, [], tmp_path / "a", SMALL, resume_from=tmp_path)
    with pytest.raises(UserError, match="exceeds"):
        train_adapter(tiny_model, rows, [], tmp_path / "a", SMALL.model_copy(update={"num_layers": 5}))


def test_split_rows_is_seeded_and_keeps_a_training_row(rows: list) -> None:
    train, valid = split_rows(rows, 0.25, seed=1)
    assert len(valid) == 4 and len(train) == 12
    assert sorted(map(str, train + valid)) == sorted(map(str, rows))
    assert split_rows(rows, 0.25, seed=1) == (train, valid)
    assert split_rows(rows, 0.25, seed=2) != (train, valid)
    assert split_rows(rows[:1], 0.5) == (rows[:1], [])
    with pytest.raises(UserError, match="valid_share"):
        split_rows(rows, 1.0)


def test_data_stats_counts_what_training_sees(tiny_model: Path, rows: list) -> None:
    _, tok = mlx_lm.load(str(tiny_model))
    stats = data_stats(rows, tok)
    assert stats.samples == 16
    assert 0 < stats.target_tokens < stats.tokens
    assert stats.truncated == 0 and stats.unusable == 0
    short = data_stats(rows, tok, max_seq_length=8)
    assert short.truncated == 16 and short.unusable == 16


def test_the_target_ends_with_the_end_token_the_model_generates(tiny_model: Path, rows: list) -> None:
    # The chat template writes a newline after each message's end token. Generation stops at
    # the end token, so the newline is never generated: it must not be a training target.
    _, tok = mlx_lm.load(str(tiny_model))
    stats = data_stats(rows, tok)
    end = tok.eos_token_id
    expected_target = expected_total = 0
    for row in rows:
        full = tok.apply_chat_template(row["messages"])
        prompt = tok.apply_chat_template(row["messages"][:-1], add_generation_prompt=True)
        last_end = max(i for i, t in enumerate(full) if t == end)
        assert last_end < len(full) - 1  # the template does write past the end token
        expected_total += last_end + 1
        expected_target += last_end + 1 - len(prompt)
    assert stats.tokens == expected_total
    assert stats.target_tokens == expected_target


def test_a_batch_trains_exactly_the_target_tokens_and_no_padding(tiny_model: Path, rows: list) -> None:
    # mlx-lm's default_loss weighs positions offset..L inclusive: a batch must not let it
    # reach the padding after a row's last token.
    from mlx_lm.tuner.trainer import default_loss

    from looper_engine.consolidation.train import _chat_dataset, _make_batch

    model, tok = mlx_lm.load(str(tiny_model))
    ds = _chat_dataset(rows, tok, True)
    batch, ends = _make_batch(ds, list(range(len(rows))), 512)
    _, ntoks = default_loss(model, batch, ends)
    assert int(ntoks) == data_stats(rows, tok).target_tokens


def test_warmup_raises_the_learning_rate_to_its_setting(tiny_model: Path, rows: list, tmp_path: Path) -> None:
    reports: list[TrainProgressInfo] = []
    train_adapter(
        tiny_model, rows, [], tmp_path / "adapter",
        TrainConfig(iters=6, warmup=3, learning_rate=1e-3, steps_per_report=1, steps_per_eval=100, save_every=100),
        on_progress=reports.append,
    )
    rates = [r.learning_rate for r in reports if r.learning_rate is not None]
    assert len(rates) == 6
    assert rates[0] < rates[1] < rates[2] < 1e-3
    assert rates[3:] == pytest.approx([1e-3] * 3)
