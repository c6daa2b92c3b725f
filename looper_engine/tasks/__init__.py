"""Tasks: the task model, the built-in koan suite, SWE-Bench-CL."""
