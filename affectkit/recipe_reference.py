"""The recipe reference (docs/recipes.md), written from the pydantic models themselves.

Every key of every section, with its type, default and description, in the order the
models declare them, so the page cannot say anything the validator does not enforce.
``affectkit recipe reference`` prints it; a test fails when docs/recipes.md differs.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from affectkit.recipe import ComponentRef, Recipe, Section

HEADER = """# Recipe reference

<!-- Written by `affectkit recipe reference > docs/recipes.md` from the pydantic models in
affectkit/recipe.py; tests/test_recipe_reference.py fails when it is stale. -->

A recipe is one YAML file with the sections below; every key is optional except `name`.
Unknown keys are errors that name the key path and the keys allowed there. Any key can be
overridden on the command line: `affectkit run RECIPE --set train.epochs=3 render.size=96`.
A *component* (`name` plus `options`, or just the name) is anything a plugin registers:
`affectkit plugins` lists them, `affectkit plugins --options NAME` prints one's options, and
the [component reference](components.md) gives every built-in component's options.
Relative paths written in a recipe file (a dataset's `root`, `data.subjects.file`) are
relative to the file's folder; those given with `--set` to the working folder.
"""


def type_name(annotation: Any) -> str:
    """A reader's name for a field type: ``list of int``, ``one of a, b``, ``path or null``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if origin is typing.Annotated:
        return type_name(args[0])
    if isinstance(annotation, type) and issubclass(annotation, ComponentRef):
        return "component"
    return {int: "integer", float: "number", str: "string", bool: "boolean", Path: "path"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def constraints(field: FieldInfo) -> str:
    bounds = []
    for item in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >=")):
            value = getattr(item, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value}")
    return ", ".join(bounds)


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = TypeAdapter(field.annotation).dump_python(field.get_default(call_default_factory=True), mode="json")
    return "`" + yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip() + "`"


def section_models(model: type[BaseModel]) -> list[tuple[str, type[Section]]]:
    """``model``'s nested sections (not components), in declaration order."""
    return [
        (name, field.annotation)
        for name, field in model.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, Section) and not issubclass(field.annotation, ComponentRef)
    ]


def table(model: type[BaseModel], prefix: str) -> str:
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    sections = dict(section_models(model))
    for name, field in model.model_fields.items():
        if name in sections:
            rows.append(f"| `{prefix}{name}` | section | see [`{name}`](#{name}) | {(sections[name].__doc__ or '').strip()} |")
            continue
        kind = type_name(field.annotation)
        bounds = constraints(field)
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {kind}{f' ({bounds})' if bounds else ''} | {default_text(field)} | {description} |")
    return "\n".join(rows)


def recipe_reference() -> str:
    """The whole reference page as Markdown."""
    parts = [HEADER, "## Top level\n\n" + table(Recipe, "")]

    def add(model: type[BaseModel], prefix: str) -> None:
        for name, section in section_models(model):
            parts.append(f"## {name}\n\n{table(section, prefix + name + '.')}")
            add(section, prefix + name + ".")

    add(Recipe, "")
    return "\n\n".join(parts) + "\n"


COMPONENTS_HEADER = """# Component reference

<!-- Written by `affectkit plugins --reference > docs/components.md` from the registered
components' Options models; tests/test_recipe_reference.py fails when it is stale. -->

Every component the built-in plugins register, by kind, with its options: the `options`
mapping of a component in a recipe (`{name: timm, options: {model: resnet18}}`).
`affectkit plugins --options NAME` prints one component's table; third-party plugins'
components are listed there once installed.
"""


def option_rows(options: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(key, type with bounds, default, description) of every option of a component."""
    rows = []
    for name, field in options.model_fields.items():
        bounds = constraints(field)
        rows.append((name, type_name(field.annotation) + (f" ({bounds})" if bounds else ""), default_text(field).strip("`"), field.description or ""))
    return rows


def component_table(options: type[BaseModel]) -> str:
    rows = option_rows(options)
    if not rows:
        return "No options."
    lines = ["| option | type | default | description |", "| --- | --- | --- | --- |"]
    lines += [f"| `{key}` | {kind} | `{default}` | {description.replace('|', chr(92) + '|')} |" for key, kind, default, description in rows]
    return "\n".join(lines)


def component_reference() -> str:
    """The component reference page (built-in plugins only) as Markdown."""
    from affectkit.registry import KINDS, registry

    parts = [COMPONENTS_HEADER]
    infos = [info for info in registry().all() if info.origin == "built-in"]
    for kind in KINDS:
        parts.append(f"## {kind}")
        for info in (i for i in infos if i.kind == kind):
            parts.append(f"### `{info.name}`\n\n{info.description.replace('``', '`')}\n\n{component_table(info.cls.Options)}")
    return "\n\n".join(parts) + "\n"
