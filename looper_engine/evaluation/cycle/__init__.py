"""The day/night cycle of an experiment.

For every seed (one independent learning line) the base model is first evaluated zero-shot
on every chunk (z[j]) and on the held-out set. Then, for cycle i = 0 .. N-1 and every arm:

- **day**: the arm, as it is now, runs the tasks of chunk i (and its teacher, if it has one);
  every step is recorded like any other run.
- **night**: a learning arm consolidates the day into a *candidate*: an adapter trained with
  its strategy, a refreshed rule set, new memories. The candidate is evaluated on the frozen
  set (every task learned so far) and the regression gate compares it, task by task, with the
  arm as it was (exact one-sided McNemar); it is adopted only if it does not lose.
- **evaluate**: the arm as adopted runs chunks 0..i (a[i][j], j <= i), chunk i+1 (a[i][i+1],
  which forward transfer needs) and the held-out set.

Static arms (base, framework) have no day or night: their state never changes.

A measurement is identified by its conditions: the model, the adapter's content hash, the
exact system prompt the task gets (rules and retrieved memories included) and the agent
config (seed included). Conditions measured once are never measured again: the cell reuses
the episode (`reused`). This is what makes a static arm cost one pass over the stream, a
rejected candidate cost nothing more, and a day cost nothing when the previous evaluation
already ran that chunk under the same conditions.

Every finished unit (a cell, a candidate, a night) is one row written in one transaction, so
a killed experiment, run again, skips all that is recorded and redoes only what was in
flight (an interrupted episode, an unfinished training). With deterministic models (greedy
decoding, seeded samplers, seeded training) the results equal those of an uninterrupted run.

The modules, in the order a cycle meets them:

- `plan`: which cells each step visits, and how many units the whole run has;
- `measure`: the conditions of a cell and its measurement (read back, reused, recovered or
  run); the day, the evaluations and the gate all measure through it;
- `night`: the candidate (adapter training, rules, memories) and the night as a whole;
- `gate`: the frozen set measured under the candidate and the incumbent, and the verdict;
- `runner`: `ExperimentRunner`, which opens the store and walks the cycles;
- `context`, `state`, `backends`: what they share (the run's context and progress records,
  an arm's learned state, one backend per model).
"""

from looper_engine.evaluation.cycle.backends import BackendPool
from looper_engine.evaluation.cycle.context import (
    CycleProgress,
    ExperimentCancelled,
    ExperimentOutcome,
    ExperimentStopped,
    ProgressCallback,
)
from looper_engine.evaluation.cycle.runner import ExperimentRunner
from looper_engine.evaluation.cycle.state import ArmState, adapter_hash, fingerprint

__all__ = [
    "ArmState",
    "BackendPool",
    "CycleProgress",
    "ExperimentCancelled",
    "ExperimentOutcome",
    "ExperimentRunner",
    "ExperimentStopped",
    "ProgressCallback",
    "adapter_hash",
    "fingerprint",
]
