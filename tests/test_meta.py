"""Meta-tests, in the style of datasette's: the plugin contract cannot grow a hook that is
untested, undocumented or documented with the wrong signature, nor a kind of component
without a contract test over every registered name."""

from __future__ import annotations

import inspect

import pytest
import test_hooks
from cli_runs import ROOT

from affectkit import hookspecs
from affectkit.registry import KINDS, MESH_FORMAT_HOOK

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


def test_no_plugin_imports_a_private_name_of_another_module():
    """Plugins share only public names: underscore names are free to change."""
    import ast

    offenders = []
    for path in sorted((ROOT / "affectkit_plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("affectkit", "affectkit_plugins")):
                own = node.module.startswith(f"affectkit_plugins.{path.parent.name}") and path.parent.name != "affectkit_plugins"
                offenders += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_") and not own]
    assert not offenders, offenders


def test_the_core_does_not_import_the_built_in_plugins():
    """affectkit/ reaches plugins only through the registry, as a third-party plugin is reached."""
    import ast

    offenders = []
    for path in sorted((ROOT / "affectkit").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name}: {name}" for name in names if name and name.startswith("affectkit_plugins")]
    assert not offenders, offenders


def test_the_core_import_graph_has_no_cycle():
    import ast

    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "affectkit").glob("*.py")):
        name = f"affectkit.{path.stem}"
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("affectkit."):
                graph[name].add(node.module)
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name.startswith("affectkit.")}

    def cycle_from(node: str, stack: list[str]) -> list[str] | None:
        if node in stack:
            return stack[stack.index(node) :] + [node]
        for child in sorted(graph.get(node, ())):
            found = cycle_from(child, [*stack, node])
            if found:
                return found
        return None

    cycles = [c for c in (cycle_from(n, []) for n in sorted(graph)) if c]
    assert not cycles, cycles[0]
