"""The operator's dashboard: pending proposals from every bottle, and their answers.

`render` and `edit` are plain Python (used by `rbottle dashboard --once` too);
`app` is the Textual application, imported only when the TUI runs.
"""
