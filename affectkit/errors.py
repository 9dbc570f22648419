"""The errors affectkit raises on bad input.

Every failure a user can cause (a broken mesh, a wrong recipe key, an unknown plugin name,
a damaged checkpoint) surfaces as one of these, with a message that names the file, field
or plugin and says what is allowed. The CLI prints them without a traceback.
"""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class AffectkitError(Exception):
    """Base class of every error caused by input rather than by a bug."""


class PluginError(AffectkitError):
    """Unknown component name, duplicate registration, or invalid component options."""


class MeshError(AffectkitError):
    """A mesh or sequence file that cannot be read or is geometrically invalid."""


class RecipeError(AffectkitError):
    """A recipe that is not valid YAML or does not match the recipe schema."""


class CheckpointError(AffectkitError):
    """A checkpoint directory that is missing, truncated or altered."""


class DatasetError(AffectkitError):
    """A dataset root or manifest that cannot be read."""


def shorten(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message never echoes a whole
    (possibly huge) input."""
    short = reprlib.Repr()
    short.maxstring, short.maxother, short.maxlong, short.maxlist, short.maxdict, short.maxlevel = limit, limit, limit, 10, 10, 3
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(exc: ValidationError, top: str = "<top level>") -> str:
    """A pydantic error as ``where: what (got value)``, one per problem on one line, each
    value shortened: pydantic's own message spans lines and echoes inputs whole."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or top
        got = "" if err["type"] == "missing" or not err["loc"] else f" (got {shorten(err['input'])})"  # not the whole document
        problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(problems)
