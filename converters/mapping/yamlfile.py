"""Read a YAML mapping file keeping the line of every key, and check it against the JSON Schema.

Mapping authors get errors such as ``mappings/hl7v2/oru_r01.yaml:42 rules[3].codes: unknown
table 'abo'``: the file, the line and the key path. PyYAML's composer gives every node its start
mark; we walk the node tree once, building the plain Python value and a map from key path to line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from converters.errors import MappingTableError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "mappings" / "schema" / "mapping.schema.json"

KeyPath = tuple[str | int, ...]

# libyaml's composer is several times faster and keeps the same marks (lines); PyYAML's wheels
# ship it, the pure-Python loader stays the fallback.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A mapping file's content and the 1-based line of each key path in it."""

    file: str
    data: dict[str, Any]
    lines: dict[KeyPath, int]

    def line(self, path: KeyPath) -> int | None:
        """Return the line of ``path`` or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def error(self, path: KeyPath, reason: str) -> MappingTableError:
        return MappingTableError(self.file, self.line(path), format_path(path), reason)


def format_path(path: KeyPath) -> str:
    """Render ``("rules", 3, "codes")`` as ``rules[3].codes``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def load_yaml(path: Path, display_name: str | None = None) -> YamlDocument:
    """Parse ``path``; raise MappingTableError with file and line on a syntax error."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise MappingTableError(name, line, "", f"YAML syntax: {exc.problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingTableError(name, None, "", f"cannot read file: {exc}") from None
    if node is None:
        raise MappingTableError(name, 1, "", "the file is empty")
    lines: dict[KeyPath, int] = {}
    data = _construct(node, (), lines)
    if not isinstance(data, dict):
        raise MappingTableError(name, 1, "", "the file must hold a mapping at the top level")
    return YamlDocument(name, data, lines)


def _construct(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node))
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


_CONSTRUCTOR = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    return _CONSTRUCTOR.construct_object(node, deep=True)


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_schema(doc: YamlDocument) -> None:
    """Raise the first schema violation of ``doc``, deepest (most specific) error first."""
    errors = list(_validator().iter_errors(doc.data))
    if not errors:
        return
    best = jsonschema.exceptions.best_match(errors)
    path = tuple(best.absolute_path)
    raise doc.error(path, _schema_message(best))


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"unknown key ({error.message.split('(')[-1].rstrip(')')})"
    if error.validator == "enum":
        return f"must be one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return error.message
