"""Path and host patterns: ``/users/{id:int}`` compiled once to a regex plus convertors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .convertors import CONVERTORS, Convertor

__all__ = ["Pattern", "compile_pattern"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled pattern.

    ``source`` is the regex body (unanchored, parameters as ``(?P<name>...)`` groups),
    ``template`` the text with ``{name}`` placeholders, ``params`` the convertors by name.
    ``literal`` is true when the pattern has no parameters (then ``text == template``).
    """

    text: str
    source: str
    template: str
    params: dict[str, Convertor]

    @property
    def literal(self) -> bool:
        return not self.params

    def source_with_prefix(self, prefix: str) -> str:
        """The regex body with every group renamed ``prefix + name`` (for combined regexes)."""
        source = self.source
        for name in self.params:
            source = source.replace(f"(?P<{name}>", f"(?P<{prefix}{name}>")
        return source

    def convert(self, groups: dict[str, str | Any], prefix: str = "") -> dict[str, Any]:
        return {name: conv.convert(groups[prefix + name]) for name, conv in self.params.items()}

    def build(self, params: dict[str, Any]) -> str:
        """The text with ``params`` filled in (the caller checked the names match)."""
        text = self.template
        for name, convertor in self.params.items():
            text = text.replace("{" + name + "}", convertor.to_string(params[name]))
        return text


def compile_pattern(text: str, *, what: str = "path") -> Pattern:
    """Parse ``text``; an unknown convertor, a bad or repeated name or a stray brace raises
    ``ValueError`` naming the pattern."""
    source: list[str] = []
    template: list[str] = []
    params: dict[str, Convertor] = {}
    position = 0
    while position < len(text):
        opening = text.find("{", position)
        closing = text.find("}", position)
        if closing != -1 and (opening == -1 or closing < opening):
            raise ValueError(f"{what} pattern {text!r}: unbalanced '}}' at {closing}")
        if opening == -1:
            break
        end = text.find("}", opening)
        if end == -1 or "{" in text[opening + 1 : end]:
            raise ValueError(f"{what} pattern {text!r}: unbalanced '{{' at {opening}")
        literal = text[position:opening]
        source.append(re.escape(literal))
        template.append(literal)
        name, _, kind = text[opening + 1 : end].partition(":")
        kind = kind or "str"
        if not _NAME.match(name):
            raise ValueError(f"{what} pattern {text!r}: bad parameter name {name!r}")
        if name in params:
            raise ValueError(f"{what} pattern {text!r}: duplicate parameter {name!r}")
        if kind not in CONVERTORS:
            known = ", ".join(sorted(CONVERTORS))
            raise ValueError(f"{what} pattern {text!r}: unknown convertor {kind!r} ({known})")
        params[name] = CONVERTORS[kind]
        source.append(f"(?P<{name}>{CONVERTORS[kind].regex})")
        template.append("{" + name + "}")
        position = end + 1
    source.append(re.escape(text[position:]))
    template.append(text[position:])
    return Pattern(text, "".join(source), "".join(template), params)
