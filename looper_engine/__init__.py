"""Looper engine: the headless core (agent loop, tools, backends, store, experiments)."""

__version__ = "0.1.0"
