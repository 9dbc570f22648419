"""Meta-tests, in the style of datasette's: the plugin contract cannot grow a hook that is
untested, undocumented or documented with the wrong signature, nor a kind of component
without a contract test over every registered name."""

from __future__ import annotations

import ast
import inspect

import pytest
import test_hooks
from cli_runs import ROOT

from affectkit import hookspecs
from affectkit.registry import COMMAND_HOOK, KINDS, MESH_FORMAT_HOOK

HOOKS = sorted(name for name, value in vars(hookspecs).items() if name.startswith("register_") and callable(value))


def signature(hook: str) -> str:
    """``register_x(register: Register) -> None``, as written in hookspecs.py."""
    sig = inspect.signature(getattr(hookspecs, hook))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{hook}({params}) -> {sig.return_annotation}"


def test_there_is_a_hook_per_kind_one_for_mesh_formats_and_one_for_commands():
    assert HOOKS == sorted([*(hook for hook, _ in KINDS.values()), MESH_FORMAT_HOOK, COMMAND_HOOK])


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
        assert "`affectkit.data.mesh.Mesh`" in section
        return
    if hook == COMMAND_HOOK:  # commands are click commands
        assert "`@cli.command()`" in section
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
    for path in sorted((ROOT / "affectkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names if name and name.startswith("affectkit_plugins")]
    assert not offenders, offenders


def test_the_core_import_graph_has_no_cycle():
    import ast

    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "affectkit").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
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


def _is_options(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "options") or (isinstance(node, ast.Name) and node.id == "options")


def option_names_read(source: str) -> list[tuple[int, str]]:
    """(line, option name) of every option the code reads by name: ``x.options["name"]``,
    ``x.options.get("name")``, ``"name" in x.options`` and ``x.options.name``."""
    tree = ast.parse(source)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}  # options.update(...): a method, not an option
    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and _is_options(node.value) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and _is_options(node.func.value):
            key = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and _is_options(node.comparators[0]):
            key = node.left.value
        elif isinstance(node, ast.Attribute) and _is_options(node.value) and id(node) not in called and not node.attr.startswith("model_"):
            key = node.attr
        if isinstance(key, str):
            found.append((node.lineno, key))
    return found


def test_the_core_reads_no_plugin_option_by_name():
    """The core (affectkit/, apps/) learns what it needs of a component from the members of
    its base class in affectkit/interfaces.py (a dataset's ``path_option`` and
    ``identity()``, an encoder's ``without_starting_weights``), never from the name of an
    option. The options a core base class declares itself (every face generator's controls,
    ``FaceGenerator.Options``) are the core's own."""
    from affectkit.data.face_generator import FaceGenerator

    own = set(FaceGenerator.Options.model_fields)
    read = [
        f"{path.relative_to(ROOT)}:{line}: {key}"
        for path in sorted([*ROOT.glob("affectkit/**/*.py"), *ROOT.glob("apps/**/*.py")])
        for line, key in option_names_read(path.read_text())
        if key not in own
    ]
    assert not read, "the core reads these plugin options by name:\n" + "\n".join(read)
    # and the check sees each form
    probe = 'a = x.options["root"]\nb = x.options.get("seed")\nc = "pretrained" in ref.options\nd = dataset.options.table\n'
    assert [key for _, key in option_names_read(probe)] == ["root", "seed", "pretrained", "table"]


def test_every_built_in_plugin_module_is_an_entry_point_of_the_distribution():
    """Built-ins load through the entry points third-party plugins use: a plugin module
    left out of pyproject.toml would silently register nothing."""
    import tomllib

    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["affectkit"].values())
    with_hooks = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "affectkit_plugins").rglob("*.py")
        if "@hookimpl" in path.read_text()
    }
    assert with_hooks == declared


def test_the_readme_layout_names_every_core_folder_and_module_there():
    """README.md's layout section is the core's folders: each subpackage a row of its own,
    listing every module in it, so a newcomer finds any module from the README."""
    section = (ROOT / "README.md").read_text().split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `affectkit/")}
    folders = sorted({path.parent for path in (ROOT / "affectkit").rglob("*.py")})
    missing = []
    for folder in folders:
        name = f"{folder.relative_to(ROOT)}/"
        modules = [p.name for p in folder.glob("*.py") if not p.name.startswith("__")]
        missing += [name] if name not in rows else [f"{name}{m}" for m in modules if f"`{m}`" not in rows[name]]
    assert not missing, f"README.md's layout section does not name: {missing}"


def test_every_package_folder_ships_in_the_distribution():
    """pyproject.toml lists the packages a wheel carries by hand: a subpackage left out of
    it would install from a checkout (editable) and be missing from every wheel."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: ROOT / folder for name, folder in setuptools["package-dir"].items()}
    folders |= {"affectkit": ROOT / "affectkit", "affectkit_plugins": ROOT / "affectkit_plugins"}
    on_disk = {
        ".".join((top, *init.parent.relative_to(root).parts))
        for top, root in folders.items()
        for init in root.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk == set(setuptools["packages"])
