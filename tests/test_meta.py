"""Meta-tests, in the style of datasette's: the plugin contract cannot grow a hook that is
untested, undocumented or documented with the wrong signature, nor a kind of component
without a contract test over every registered name."""

from __future__ import annotations

import inspect

import pytest

import test_hooks
from affectkit import hookspecs
from affectkit.registry import KINDS, MESH_FORMAT_HOOK
from cli_runs import ROOT

HOOKS = sorted(name for name, value in vars(hookspecs).items() if name.startswith("register_") and callable(value))


def signature(hook: str) -> str:
    """``register_x(register: Register) -> None``, as written in hookspecs.py."""
    sig = inspect.signature(getattr(hookspecs, hook))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{hook}({params}) -> {sig.return_annotation}"


def test_there_is_a_hook_per_kind_and_one_for_mesh_formats():
    assert HOOKS == sorted([*(hook for hook, _ in KINDS.values()), MESH_FORMAT_HOOK])


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    assert callable(getattr(test_hooks, f"test_hook_{hook}", None)), f"tests/test_hooks.py has no test_hook_{hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    page = (ROOT / "docs" / "hooks.md").read_text()
    assert f"## {hook}\n" in page, f"docs/hooks.md has no section for {hook}"
    section = page.split(f"## {hook}\n", 1)[1].split("\n## ", 1)[0]
    assert f"    {signature(hook)}\n" in section, f"docs/hooks.md: {hook} should read `{signature(hook)}`"
    if hook == MESH_FORMAT_HOOK:  # formats are functions, not components
        assert "`affectkit.mesh.Mesh`" in section
        return
    base = KINDS[next(kind for kind, (name, _) in KINDS.items() if name == hook)][1]
    assert f"`affectkit.interfaces.{base.__name__}`" in section


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_contract_test_over_every_registered_name(kind):
    sources = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py") if path.name != "test_meta.py")
    assert f'registry().names("{kind}")' in sources, f"no test parametrised over every registered {kind}"
