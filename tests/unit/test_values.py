"""Manifest values: literal, ?prompt, ${VAR}; resolved locally, never shown."""

from __future__ import annotations

import pytest

from remotebottle.errors import ManifestError
from remotebottle.values import check_available, resolve, source_of

pytestmark = pytest.mark.unit


def never_ask(question: str) -> str:
    raise AssertionError(f"asked {question!r}")


def test_literal_value() -> None:
    assert resolve("plain", "p", {}, never_ask).get_secret_value() == "plain"
    assert source_of("plain").describe() == "literal"


def test_env_template_substitutes_every_variable() -> None:
    value = resolve("Bearer ${A}:${B}", "p", {"A": "one", "B": "two"}, never_ask)
    assert value.get_secret_value() == "Bearer one:two"
    assert source_of("Bearer ${A}:${B}:${A}").describe() == "from $A, $B"


def test_missing_variable_names_it_and_the_path() -> None:
    with pytest.raises(ManifestError) as info:
        resolve("${NOPE}", "m.json: bottles.b.env.X", {}, never_ask)
    assert (
        info.value.message == "m.json: bottles.b.env.X: ${NOPE} is not set in the local environment"
    )
    assert "export NOPE" in info.value.hint


def test_check_available_reads_no_value() -> None:
    check_available("${A}", "p", {"A": "x"})
    with pytest.raises(ManifestError, match=r"\$\{B\}"):
        check_available("${A}${B}", "p", {"A": "x"})


def test_prompt_asks_with_the_question() -> None:
    asked: list[str] = []

    def prompter(question: str) -> str:
        asked.append(question)
        return "typed-secret"

    value = resolve("?GitHub token", "p", {}, prompter)
    assert asked == ["GitHub token"]
    assert value.get_secret_value() == "typed-secret"
    assert source_of("?GitHub token").describe() == "asked at start"


def test_resolved_values_never_show_in_repr_or_str() -> None:
    value = resolve("${S}", "p", {"S": "hunter2-secret"}, never_ask)
    assert "hunter2-secret" not in repr(value)
    assert "hunter2-secret" not in str(value)


def test_dollar_without_braces_is_literal() -> None:
    assert resolve("$HOME and $", "p", {}, never_ask).get_secret_value() == "$HOME and $"
