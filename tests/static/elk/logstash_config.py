"""A small reader of Logstash's pipeline language, for static tests: Logstash itself cannot run here.

It checks what a text editor cannot: every string closed, every brace and bracket paired, and the
shape `section { plugin { name => value } }` with `if / else if / else` branches, and gives the
plugins and their settings to the tests. It does not evaluate conditions or check plugin options:
Logstash's own check does, and it needs Docker (a scratch data path: the check opens the persistent
queue, which a running Logstash holds locked):

    docker compose run --rm --no-deps logstash --config.test_and_exit --path.data=/tmp/config-test
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("input", "filter", "output")
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<arrow>=>)
  | (?P<punct>[{}\[\],])
  | (?P<word>[^\s{}\[\],"'#]+)
""", re.VERBOSE)


class ConfigError(ValueError):
    pass


@dataclass
class Plugin:
    name: str
    settings: dict[str, Any]
    # The conditions of the branches around the plugin, outermost first ("else" for an else branch).
    conditions: list[str] = field(default_factory=list)


@dataclass
class Pipeline:
    sections: dict[str, list[Plugin]]
    comments: list[str]

    def plugins(self, section: str, name: str) -> list[Plugin]:
        return [plugin for plugin in self.sections.get(section, []) if plugin.name == name]

    def plugin(self, section: str, name: str) -> Plugin:
        found = self.plugins(section, name)
        if len(found) != 1:
            raise AssertionError(f"expected one {name} in {section}, found {len(found)}")
        return found[0]


def tokenize(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    tokens: list[tuple[str, str]] = []
    comments: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            line = text.count("\n", 0, position) + 1
            raise ConfigError(f"line {line}: unterminated string or stray character {text[position]!r}")
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "comment":
            comments.append(value)
        elif kind != "space":
            tokens.append((kind, value))
        position = match.end()
    return tokens, comments


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise ConfigError(f"unexpected end of file (expected {expected or 'more'}): unbalanced braces?")
        token = self.tokens[self.index]
        if expected is not None and token[1] != expected:
            raise ConfigError(f"expected {expected!r}, found {token[1]!r} (token {self.index})")
        self.index += 1
        return token

    def pipeline(self) -> dict[str, list[Plugin]]:
        sections: dict[str, list[Plugin]] = {}
        while self.peek() is not None:
            _, name = self.take()
            if name not in SECTIONS:
                raise ConfigError(f"unknown section {name!r}")
            self.take("{")
            sections.setdefault(name, []).extend(self.block([]))
        return sections

    def block(self, conditions: list[str]) -> list[Plugin]:
        """Plugins and branches up to the closing brace, which it consumes."""
        plugins: list[Plugin] = []
        while self.peek() != "}":
            if self.peek() is None:
                raise ConfigError("unexpected end of file: a block is not closed")
            if self.peek() == "if":
                plugins.extend(self.branches(conditions))
                continue
            kind, name = self.take()
            if kind != "word":
                raise ConfigError(f"expected a plugin name, found {name!r}")
            self.take("{")
            plugins.append(Plugin(name, self.settings(), list(conditions)))
        self.take("}")
        return plugins

    def branches(self, conditions: list[str]) -> list[Plugin]:
        self.take("if")
        plugins = self.block([*conditions, self.condition()])
        while self.peek() == "else":
            self.take("else")
            if self.peek() == "if":
                self.take("if")
                plugins.extend(self.block([*conditions, self.condition()]))
            else:
                self.take("{")
                plugins.extend(self.block([*conditions, "else"]))
        return plugins

    def condition(self) -> str:
        parts: list[str] = []
        depth = 0
        while not (self.peek() == "{" and depth == 0):
            _, value = self.take()
            depth += {"[": 1, "]": -1}.get(value, 0)
            parts.append(value)
        self.take("{")
        text = " ".join(parts)
        if not parts or depth != 0:
            raise ConfigError(f"malformed condition: {text!r}")
        # Field references as written: [a][b], ![a].
        return re.sub(r"\[ (.*?) \]", r"[\1]", text).replace("] [", "][").replace("! [", "![")

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        while self.peek() != "}":
            kind, name = self.take()
            if kind not in ("word", "string"):
                raise ConfigError(f"expected a setting name, found {name!r}")
            self.take("=>")
            settings[_unquote(kind, name)] = self.value()
        self.take("}")
        return settings

    def value(self) -> Any:
        kind, token = self.take()
        if kind == "string":
            return _unquote(kind, token)
        if token == "[":
            items: list[Any] = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.take(",")
                elif self.peek() != "]":
                    raise ConfigError(f"expected ',' or ']' in an array, found {self.peek()!r}")
            self.take("]")
            return items
        if token == "{":
            mapping: dict[str, Any] = {}
            while self.peek() != "}":
                key_kind, key = self.take()
                self.take("=>")
                mapping[_unquote(key_kind, key)] = self.value()
            self.take("}")
            return mapping
        if kind == "word":
            return token
        raise ConfigError(f"expected a value, found {token!r}")


def _unquote(kind: str, token: str) -> str:
    return token[1:-1] if kind == "string" else token


def parse(text: str) -> Pipeline:
    tokens, comments = tokenize(text)
    return Pipeline(_Parser(tokens).pipeline(), comments)


def iter_plugins(pipeline: Pipeline) -> Iterator[tuple[str, Plugin]]:
    for section, plugins in pipeline.sections.items():
        for plugin in plugins:
            yield section, plugin
