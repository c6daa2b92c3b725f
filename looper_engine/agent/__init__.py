"""The episode loop: prompts, context pruning, loop detection, control, runs."""
