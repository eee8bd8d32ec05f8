"""A fake Anthropic Messages API for tests (see server.py)."""
