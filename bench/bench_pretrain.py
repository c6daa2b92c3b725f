"""Rebuild the committed mini-lab base model and check the rebuild against it.

`models/minilab` is committed so `make run` starts at once; this bench proves that
`looper model pretrain` makes it: it rebuilds the default recipe from scratch into a scratch
folder and prints, beside the committed model's own record,

  minutes       the whole rebuild (episodes, data, tokenizer, training); target <= 30
  recipe key    must equal the committed one (same recipe, pipeline and world version)
  data hash     must equal the committed one (the same oracle episodes, synthesized alike)
  final loss    of both trainings
  resolve rate  per base family of both models, through the real engine, on the same new
                instances, with Wilson 95% intervals (the rebuild should land inside them)

Usage:

    .venv/bin/python bench/bench_pretrain.py [--n 50] [--model models/minilab]

Exits 1 when the recipe key or the data hash differs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from looper_engine.consolidation.minilab_eval import evaluate_model
from looper_engine.consolidation.pretrain import RECIPE_FILE, PretrainRecipe, pretrain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("models/minilab"))
    ap.add_argument("--n", type=int, default=50, help="new instances per base family")
    ap.add_argument("--seed", type=int, default=9100)
    opts = ap.parse_args()

    if not (opts.model / RECIPE_FILE).is_file():
        print(f"bench_pretrain: no committed model at {opts.model} (no {RECIPE_FILE}); "
              f"build it with `looper model pretrain {opts.model}`")
        return 2
    committed = json.loads((opts.model / RECIPE_FILE).read_text())
    recipe = PretrainRecipe.model_validate(committed["recipe"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    try:
        t0 = time.perf_counter()
        rebuilt = pretrain(tmp / "minilab", recipe, force=True)
        minutes = (time.perf_counter() - t0) / 60
        print(f"rebuild: {minutes:.1f} min (target <= 30), {rebuilt.tokens_per_second or 0:.0f} tok/s, "
              f"BLAS {rebuilt.blas}")
        same_key = rebuilt.recipe_key == committed["recipe_key"]
        same_data = rebuilt.data_hash == committed["data_hash"]
        print(f"recipe key: committed {committed['recipe_key']}  rebuilt {rebuilt.recipe_key}  "
              f"{'same' if same_key else 'DIFFERENT'}")
        print(f"data hash:  committed {committed['data_hash']}  rebuilt {rebuilt.data_hash}  "
              f"{'same' if same_data else 'DIFFERENT'}")
        print(f"final loss: committed {committed['result'].get('final_loss'):.3f}  rebuilt {rebuilt.final_loss:.3f}")
        reports = {
            name: asyncio.run(evaluate_model(path, n_base=opts.n, n_other=0, seed=opts.seed))
            for name, path in (("committed", opts.model), ("rebuilt", rebuilt.path))
        }
        print(f"{'family':14}{'committed':>24}{'rebuilt':>24}")
        for a, b in zip(reports["committed"].group("base"), reports["rebuilt"].group("base"), strict=True):
            cells = [f"{s.resolved}/{s.n} {s.rate:.0%} [{s.lo:.0%},{s.hi:.0%}]" for s in (a, b)]
            print(f"{a.family:14}{cells[0]:>24}{cells[1]:>24}")
        means = [reports[k].mean("base") or 0.0 for k in ("committed", "rebuilt")]
        print(f"{'mean':14}{means[0]:>24.0%}{means[1]:>24.0%}")
        return 0 if same_key and same_data else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
