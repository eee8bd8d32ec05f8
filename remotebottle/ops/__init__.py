"""The use cases: what each `rbottle` command does, between parsing and rendering.

A session goes through these phases, each in one place:

    plan (ops.plan)  ->  acquire the VM, connect, provision, tunnel (hosts.engine)
      ->  place images (ops.images)  ->  launch (backend)  ->  stream (ops.stream)
      ->  end: transcript, refusals, the record's phase (ops.session)

`ops.listing`, `ops.cleanup` and `ops.orphans` serve `list` and `cleanup`. The session
record (`state.Metadata`: the host as resolved, the phase) is written here and read back
by attach, list and the dashboard. Layers: cli -> ops -> {hosts, transport, backend,
manifest}; `tests/unit/test_layers.py` holds them.
"""
