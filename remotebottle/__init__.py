"""remotebottle: Claude Code agents in locked-down Docker bottles, local or on a remote VM."""

__version__ = "0.1.0"
