"""Training speed of `train_adapter` against mlx-lm's own LoRA training path.

Both sides train the same tiny model on the same rows with the same LoRA settings,
in this process, alternating runs after one warm-up each (the first run compiles
kernels). Printed per side, as medians over the runs:

  tok/s     tokens under the loss per second of training steps, as mlx-lm's trainer
            reports them (steady state; excludes evaluation and saving)
  wall s    one whole call: load the model, build the data, train, save

and the ratio ours/theirs (target >= 0.95).

Then the BLAS: full training of the mini-lab architecture (hidden 128, 4 layers, float32,
batches of 16 x 192 tokens) in two child processes, one with the OpenBLAS `looper` would
preload and one with mlx's reference BLAS, each printing its median tokens/s, and the
ratio (what `looper doctor` quotes when no OpenBLAS is installed). Usage:

    .venv/bin/python bench/bench_train.py [--runs 3] [--iters 30] [--blas-only]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from looper_engine.consolidation.train import TrainConfig, clean_rows, silenced_mlx_console, train_adapter
from looper_engine.models.tiny import build_tiny_model, toy_rows


def ours(model: Path, rows: list[dict[str, Any]], out: Path, cfg: TrainConfig) -> tuple[float, float]:
    speeds: list[float] = []
    t0 = time.perf_counter()
    train_adapter(model, rows, [], out, cfg, on_progress=lambda i: speeds.append(i.tokens_per_second or 0.0))
    wall = time.perf_counter() - t0
    return statistics.median(speeds), wall


def theirs(model: Path, data: Path, out: Path, cfg: TrainConfig) -> tuple[float, float]:
    from mlx_lm import lora
    from mlx_lm.tuner.callbacks import TrainingCallback

    speeds: list[float] = []

    class Cb(TrainingCallback):
        def on_train_loss_report(self, info: dict[str, Any]) -> None:
            speeds.append(info["tokens_per_second"])

    args = dict(lora.CONFIG_DEFAULTS)
    args.update(
        model=str(model),
        train=True,
        data=str(data),
        mask_prompt=True,
        num_layers=-1,
        batch_size=cfg.batch_size,
        iters=cfg.iters,
        learning_rate=cfg.learning_rate,
        steps_per_report=cfg.steps_per_report,
        steps_per_eval=cfg.iters + 1,
        save_every=cfg.save_every,
        val_batches=0,
        adapter_path=str(out),
        seed=cfg.seed,
        lora_parameters={"rank": cfg.rank, "scale": cfg.scale, "dropout": cfg.dropout},
    )
    ns = types.SimpleNamespace(**args)
    t0 = time.perf_counter()
    with silenced_mlx_console(), contextlib.redirect_stdout(io.StringIO()):
        model_, tok = lora.load(str(model))
        from mlx_lm.tuner.datasets import load_dataset

        train_set, valid_set, _ = load_dataset(ns, tok)
        lora.train_model(ns, model_, train_set, valid_set, training_callback=Cb())
    wall = time.perf_counter() - t0
    return statistics.median(speeds), wall


FULL_TRAINING = """
import json, statistics, time
import mlx.core as mx, mlx.nn as nn, mlx.optimizers as optim
from looper_engine.consolidation.pretrain import PretrainRecipe, model_config
from mlx_lm.models.llama import Model, ModelArgs
from looper_engine.runtime.blas import blas_info
r = PretrainRecipe()
model = Model(ModelArgs.from_dict(model_config(r, 1024, 1, 2)))
opt = optim.AdamW(learning_rate=1e-3)
def loss(m, x, y):
    return nn.losses.cross_entropy(m(x), y).mean()
step = nn.value_and_grad(model, loss)
x = mx.random.randint(0, 1024, (16, 193))
speeds = []
for i in range(STEPS):
    t = time.perf_counter()
    v, g = step(model, x[:, :-1], x[:, 1:])
    opt.update(model, g)
    mx.eval(model.parameters(), opt.state, v)
    if i >= 2:
        speeds.append(16 * 192 / (time.perf_counter() - t))
print(json.dumps({"blas": blas_info().summary(), "tok_s": statistics.median(speeds)}))
"""


def blas_comparison(steps: int) -> None:
    from looper_engine.runtime.blas import find_openblas

    lib = find_openblas()
    if lib is None:
        print("BLAS: no OpenBLAS on this machine (apt-get install libopenblas0-pthread); nothing to compare")
        return
    code = FULL_TRAINING.replace("STEPS", str(steps))
    base_env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LOOPER_BLAS")}
    out = {}
    for side, env in (("openblas", {**base_env, "LD_PRELOAD": str(lib)}), ("reference", base_env)):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        out[side] = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"full training, mini-lab model, batch 16 x 192 tokens, median of {steps - 2} steps")
    for side in ("openblas", "reference"):
        print(f"  {out[side]['blas']:70} {out[side]['tok_s']:>8.0f} tok/s")
    print(f"  ratio openblas/reference: {out['openblas']['tok_s'] / out['reference']['tok_s']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--blas-steps", type=int, default=12)
    ap.add_argument("--blas-only", action="store_true")
    opts = ap.parse_args()
    if opts.blas_only:
        blas_comparison(opts.blas_steps)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        model = build_tiny_model(tmp / "tiny")
        rows = toy_rows()
        data = tmp / "data"
        data.mkdir()
        (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clean_rows(rows)))
        cfg = TrainConfig(iters=opts.iters, steps_per_report=5, save_every=10)

        print(f"tiny model, {len(rows)} rows, {opts.iters} iters, batch {cfg.batch_size}, rank {cfg.rank}")
        ours(model, rows, tmp / "warm-ours", cfg)
        theirs(model, data, tmp / "warm-theirs", cfg)
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "theirs": []}
        for run in range(opts.runs):
            results["ours"].append(ours(model, rows, tmp / f"ours-{run}", cfg))
            results["theirs"].append(theirs(model, data, tmp / f"theirs-{run}", cfg))

        med = {
            side: (statistics.median(s for s, _ in runs), statistics.median(w for _, w in runs))
            for side, runs in results.items()
        }
        print(f"{'':24}{'tok/s':>10}{'wall s':>10}")
        print(f"{'train_adapter':24}{med['ours'][0]:>10.1f}{med['ours'][1]:>10.2f}")
        print(f"{'mlx_lm.lora (baseline)':24}{med['theirs'][0]:>10.1f}{med['theirs'][1]:>10.2f}")
        ratio_speed = med["ours"][0] / med["theirs"][0]
        ratio_wall = med["theirs"][1] / med["ours"][1]
        print(
            f"ratio ours/theirs: tok/s {ratio_speed:.2f}, wall-time speed {ratio_wall:.2f} (target >= 0.95)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    blas_comparison(opts.blas_steps)


if __name__ == "__main__":
    main()
