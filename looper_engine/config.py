"""Every knob of the agent, as pydantic models. Each framework fix from the seed work is a
switch here so that its ablation can be rerun (see the README's table)."""

from __future__ import annotations

from copy import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: The framework fixes, in the order the README's ablation table lists them.
FRAMEWORK_SWITCHES: tuple[str, ...] = (
    "few_shot",
    "line_range_reads",
    "pruning",
    "loop_detection",
    "no_pip_rule",
    "skip_verification_rule",
    "strip_fences",
    "fuzzy_edit",
)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # framework switches
    few_shot: bool = Field(True, description="a worked example in the system prompt")
    line_range_reads: bool = Field(True, description="reads can ask for a line range")
    pruning: bool = Field(True, description="elide old observations to stay inside the token budget")
    loop_detection: bool = Field(True, description="alarm and tell the model when it loops")
    no_pip_rule: bool = Field(True, description="a rule against pip installs")
    skip_verification_rule: bool = Field(True, description="a rule against endless re-verification")
    strip_fences: bool = Field(True, description="strip code fences inside tool bodies")
    fuzzy_edit: bool = Field(True, description="whitespace-tolerant and fuzzy edit matching")

    prompt_profile: Literal["standard", "compact"] = Field(
        "standard",
        description="standard: the full system prompt; compact: a few dozen tokens (read, edit, done) for small models",
    )

    # limits
    max_steps: int = Field(30, ge=1, description="tool calls before the episode is cut off")
    token_budget: int = Field(8192, ge=256, description="context tokens the model may see")
    keep_last_turns: int = Field(4, ge=1, description="recent turns never pruned")
    max_tokens_per_turn: int = Field(2048, ge=16)
    temperature: float = Field(0.0, ge=0.0)
    seed: int | None = None

    # loop detection thresholds
    repeat_call_limit: int = Field(3, ge=2, description="the same call this many times in a row is a loop")
    same_file_read_limit: int = Field(4, ge=2, description="reads of one file without an edit in between")
    no_progress_steps: int = Field(8, ge=2, description="steps without a file change or a new command")

    # tools
    read_max_lines: int = Field(200, ge=10)
    bash_timeout_s: float = Field(30.0, gt=0)
    output_cap_chars: int = Field(6000, ge=200)
    fuzzy_threshold: float = Field(90.0, ge=50.0, le=100.0)
    test_timeout_s: float = Field(120.0, gt=0, description="seconds the scoring test run may take")

    # sandbox
    sandbox: Literal["auto", "bwrap", "seatbelt", "none"] = Field(
        "auto", description="what confines the model's commands and the tests: auto picks bwrap on Linux, seatbelt on macOS"
    )
    network: bool = Field(False, description="commands in the sandbox may use the network")

    def tool_settings(self) -> ToolSettings:
        return ToolSettings(**self.model_dump(include=set(ToolSettings.model_fields)))

    def switches(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in FRAMEWORK_SWITCHES}


def _agent_field(name: str) -> Any:
    return copy(AgentConfig.model_fields[name])


class ToolSettings(BaseModel):
    """What the tools read of an AgentConfig. Defaults and limits are AgentConfig's own
    fields, so a tool run outside an episode behaves as one inside it."""

    model_config = ConfigDict(extra="forbid")

    line_range_reads: bool = _agent_field("line_range_reads")
    strip_fences: bool = _agent_field("strip_fences")
    fuzzy_edit: bool = _agent_field("fuzzy_edit")
    fuzzy_threshold: float = _agent_field("fuzzy_threshold")
    read_max_lines: int = _agent_field("read_max_lines")
    bash_timeout_s: float = _agent_field("bash_timeout_s")
    output_cap_chars: int = _agent_field("output_cap_chars")
