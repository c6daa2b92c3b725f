"""The Looper lab: a Textual TUI over `looper_engine` (which never imports it)."""
