"""A tiny random-weight llama that `mlx_lm.load(path)` reads, built locally in about a second.

It exists so that tests, benchmarks and demos can exercise the real mlx-lm stack (load,
generate, LoRA training, fuse) without downloading anything. Its tokenizer is a small
byte-level BPE trained on built-in text that includes Python, shell commands and the
XML tool tags, so tool calls cost a handful of tokens and LoRA can teach it quickly.

The folder follows the Hugging Face layout mlx-lm expects:

    config.json             llama config with eos_token_id and the `looper_tiny` marker
    model.safetensors       float32 weights, metadata {"format": "mlx"}
    tokenizer.json          the BPE
    tokenizer_config.json   eos/pad tokens and the chat template
    chat_template.jinja     the same template, as its own file
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from looper_engine.errors import UserError

#: Bump when the layout or the recipe changes, so stale cached folders are rebuilt.
TINY_FORMAT = 1

SYSTEM_TOKEN = "<|system|>"
USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
END_TOKEN = "<|end|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (END_TOKEN, PAD_TOKEN, SYSTEM_TOKEN, USER_TOKEN, ASSISTANT_TOKEN)

# Every role opens with its marker and every message closes with the end token, which is
# also eos: the prompt for an assistant reply is a strict token prefix of the full chat,
# which is what prompt masking in mlx-lm's ChatDataset relies on.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

TOOL_TAGS = (
    "<bash>",
    "</bash>",
    "<read>",
    "</read>",
    '<write path="',
    "</write>",
    '<edit path="',
    "</edit>",
    "<old>",
    "</old>",
    "<new>",
    "</new>",
    "<done>",
    "</done>",
)

TINY_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)

_VOCAB_SIZE = 768

_CORPUS = r'''
You are a coding agent working in a repository. Use exactly one tool per turn.
Run a shell command: <bash>pytest -q tests/test_math.py</bash>
Read a file: <read>src/pkg/mod.py</read> or a line range <read>src/pkg/mod.py:10-40</read>
Write a whole file: <write path="src/pkg/new.py">print("hello")
</write>
Edit part of a file: <edit path="src/pkg/mod.py"><old>return a - b</old><new>return a + b</new></edit>
Finish with a one-line summary: <done>fixed the sign in add()</done>

<bash>ls -la</bash>
<bash>cat README.md</bash>
<bash>python -m pytest -x -q</bash>
<bash>git status --short</bash>
<bash>git diff</bash>
<bash>grep -rn "def main" src/</bash>
<bash>find . -name "*.py" | head</bash>
<bash>echo hello world</bash>
<bash>pwd</bash>
<bash>wc -l src/pkg/mod.py</bash>
<bash>python -c "import sys; print(sys.version)"</bash>
<read>tests/test_mod.py</read>
<read>setup.py</read>
<read>pyproject.toml</read>
<write path="src/pkg/__init__.py">from .mod import add
</write>
<edit path="tests/test_mod.py"><old>assert add(1, 2) == 4</old><new>assert add(1, 2) == 3</new></edit>
<done>all tests pass</done>
<done>the bug was an off-by-one error in the loop</done>

The tests fail because the function returns the wrong value. Let me read the file first.
The error says the module has no attribute named parse. I will look at the imports.
Now I run the tests again to check that the fix works.
The observation shows two failures and one error. The traceback points to line 12.

def add(a: int, b: int) -> int:
    """Return the sum of a and b."""
    return a + b


def mean(values: list[float]) -> float:
    if not values:
        raise ValueError("mean of an empty list")
    return sum(values) / len(values)


class Stack:
    def __init__(self) -> None:
        self.items: list[int] = []

    def push(self, item: int) -> None:
        self.items.append(item)

    def pop(self) -> int:
        if not self.items:
            raise IndexError("pop from an empty stack")
        return self.items.pop()


def parse_line(line: str) -> dict[str, str]:
    key, _, value = line.partition("=")
    return {key.strip(): value.strip()}


import os
import sys
from pathlib import Path

for i in range(10):
    if i % 2 == 0:
        print(i, "is even")
    else:
        print(i, "is odd")

with open("data.txt") as handle:
    lines = [line.rstrip("\n") for line in handle]

try:
    value = int(text)
except ValueError as error:
    print(f"not a number: {error}")

def test_add():
    assert add(2, 3) == 5

def test_mean():
    assert mean([1.0, 2.0, 3.0]) == 2.0

Traceback (most recent call last):
  File "src/pkg/mod.py", line 12, in add
    return a - b
AssertionError: assert -1 == 3
FAILED tests/test_mod.py::test_add - assert -1 == 3
1 failed, 4 passed in 0.12s
5 passed in 0.08s
ModuleNotFoundError: No module named 'requests'
SyntaxError: invalid syntax
NameError: name 'x' is not defined
TypeError: unsupported operand type(s) for +: 'int' and 'str'
KeyError: 'name'
IndexError: list index out of range
exit code 0
exit code 1
(no output)
total 16
drwxr-xr-x 2 user user 4096 Jan  1 12:00 src
-rw-r--r-- 1 user user  120 Jan  1 12:00 README.md

The quick brown fox jumps over the lazy dog. A small model learns the shape of the tool
calls first, then which command fits which request. List the files, show the current
directory, run the tests, print the date, count the lines, check the git status.
list files show directory run tests print date count lines check status what is here
'''


def _is_complete(path: Path, seed: int) -> bool:
    cfg_path = path / "config.json"
    if not all((path / name).is_file() for name in TINY_FILES):
        return False
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        return False
    return (
        cfg.get("looper_tiny") is True
        and cfg.get("looper_tiny_format") == TINY_FORMAT
        and cfg.get("looper_tiny_seed") == seed
    )


def is_tiny_model(path: Path) -> bool:
    """True when `path` holds a folder written by `build_tiny_model` (any seed)."""
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return cfg.get("looper_tiny") is True


def _train_tokenizer() -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines(keepends=True), trainer=trainer)
    # Byte-level pre-tokenization splits "<" from "bash", so BPE alone never learns a tag
    # as one token; added tokens make every tool tag a single id.
    tok.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in TOOL_TAGS])
    return tok


def init_weights(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, Any]:
    """Weights drawn from numpy's seeded generator, so a seed means the same model
    everywhere and building never touches mlx's global random state."""
    import mlx.core as mx
    import numpy as np

    rng = np.random.default_rng(seed)
    weights: dict[str, Any] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("norm.weight"):
            arr = np.ones(shape, dtype=np.float32)
        elif "embed_tokens" in name:
            arr = rng.normal(0.0, shape[-1] ** -0.5, size=shape).astype(np.float32)
        else:
            bound = shape[-1] ** -0.5
            arr = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        weights[name] = mx.array(arr)
    return weights


def _write_model(folder: Path, seed: int) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models.llama import Model, ModelArgs
    from transformers import PreTrainedTokenizerFast

    tok = _train_tokenizer()
    vocab_size = tok.get_vocab_size()
    end_id = tok.token_to_id(END_TOKEN)
    pad_id = tok.token_to_id(PAD_TOKEN)

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "intermediate_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "bos_token_id": None,
        "eos_token_id": end_id,
        "pad_token_id": pad_id,
        "looper_tiny": True,
        "looper_tiny_format": TINY_FORMAT,
        "looper_tiny_seed": seed,
    }
    model = Model(ModelArgs.from_dict(config))
    shapes = {name: tuple(p.shape) for name, p in tree_flatten(model.parameters())}
    weights = init_weights(shapes, seed)
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[SYSTEM_TOKEN, USER_TOKEN, ASSISTANT_TOKEN],
        chat_template=CHAT_TEMPLATE,
    )
    fast.model_max_length = 4096
    fast.save_pretrained(str(folder))
    # Older transformers read the template only from tokenizer_config.json, newer ones
    # prefer chat_template.jinja: write both so either finds it.
    tc_path = folder / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["chat_template"] = CHAT_TEMPLATE
    tc_path.write_text(json.dumps(tc, indent=2) + "\n")
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """Build the tiny model into `path` (created) and return it.

    Deterministic for a seed and idempotent: a folder that already holds a complete tiny
    model built with the same seed is returned as is. Building happens in a temporary
    folder beside `path` that is renamed into place, so a crash or a concurrent build
    never leaves a half-written model behind. A non-empty folder that is not a tiny model
    raises UserError rather than being overwritten."""
    path = Path(path)
    if _is_complete(path, seed):
        return path
    if path.exists():
        if not path.is_dir():
            raise UserError(f"cannot build the tiny model at {path}: it is a file")
        if is_tiny_model(path):
            try:
                found = json.loads((path / "config.json").read_text()).get("looper_tiny_seed")
            except (OSError, ValueError):
                found = None
            if found is not None and found != seed:
                raise UserError(f"{path} holds a tiny model built with seed {found}, not {seed}")
        elif any(path.iterdir()):
            raise UserError(f"cannot build the tiny model at {path}: the folder is not empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.building-", dir=path.parent))
    try:
        os.chmod(tmp, 0o755)
        _write_model(tmp, seed)
        if path.exists():
            # An empty folder or an incomplete/stale tiny model: replace it.
            shutil.rmtree(path)
        try:
            os.rename(tmp, path)
        except OSError:
            if _is_complete(path, seed):  # a concurrent build won the race
                return path
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


# A toy skill for the tiny model: answer a request with the right bash call. Random weights
# know none of it; LoRA learns it in tens of steps and carries it to unseen paraphrases.
TOY_SYSTEM = "You are a coding agent. Answer with exactly one tool call."
TOY_SKILLS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "files": (
        "<bash>ls -la</bash>",
        (
            "list the files",
            "show me the files",
            "what files are here",
            "list all files please",
            "which files do we have",
            "list the files in this folder",
        ),
        ("can you list the files", "files here?"),
    ),
    "where": (
        "<bash>pwd</bash>",
        (
            "where am I",
            "where are we now",
            "print where we are",
            "tell me where I am",
            "where is this",
        ),
        ("where are we",),
    ),
    "tests": (
        "<bash>pytest -q</bash>",
        (
            "run the tests",
            "check that the tests pass",
            "run the test suite",
            "do the tests pass",
            "run tests now",
        ),
        ("please run all tests",),
    ),
}


def toy_rows(heldout: bool = False) -> list[dict[str, Any]]:
    """Chat rows for the toy skill (16 training prompts, or 4 held-out paraphrases), in
    Looper's row format: `{"messages": [...], "meta": {"family": ...}}`."""
    rows = []
    for family, (answer, train_prompts, held_prompts) in TOY_SKILLS.items():
        for prompt in held_prompts if heldout else train_prompts:
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": TOY_SYSTEM},
                        {"role": "user", "content": prompt},
                        {"role": "assistant", "content": answer},
                    ],
                    "meta": {"family": family},
                }
            )
    return rows
