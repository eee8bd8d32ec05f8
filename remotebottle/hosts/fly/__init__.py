"""Fly Machines: one Machine (plus a volume for Docker's data) per session.

- `api`: the Machines REST API (token from `FLY_API_TOKEN`), with one-line errors;
- `config`: what a session's Machine is made of (keys, files, metadata, SSH port), and how
  ours are told apart from the app's other Machines;
- `instance`: `FlyProvider`, which creates the Machine, waits for it, and destroys it;
- `teardown`: destroying a Machine and its volume, and listing ours for the orphan sweep;
- `pricing`: a `vm_size`'s guest and approximate price, for the preflight.
"""

from remotebottle.hosts.fly.instance import FlyProvider

__all__ = ["FlyProvider"]
