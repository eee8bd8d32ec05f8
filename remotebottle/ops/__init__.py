"""The use cases: what each `rbottle` command does, between parsing and rendering.

A session goes through these phases, each in one place:

    plan (ops.plan)  ->  acquire the VM, connect, provision, tunnel (hosts.engine)
      ->  place images (ops.images)  ->  launch (backend)  ->  stream (ops.stream)
      ->  end: transcript, refusals, the record's phase (ops.session)

`ops.attach` returns to a bottle left running; `ops.engines` opens every engine with live
sessions, for `ops.listing` (`list`) and the dashboard; `ops.cleanup` and `ops.orphans`
serve `cleanup`; `ops.trust` serves `hosts` (host keys) and `ops.env` serves `env` (the
Docker tunnel held open). The session record (`state.Metadata`: the host as resolved,
the phase) is written here and read back by attach, resume, list and the dashboard.
`ops.link` keeps a session through a network cut. Layers: cli -> ops -> {hosts,
transport, backend, manifest}; `tests/unit/test_layers.py` holds them.
"""
