"""affectkit's built-in plugins, installed as ``affectkit_plugins``.

Each module registers components through the hooks in :mod:`affectkit.hookspecs`, exactly
as a third-party package would, and loads through the same ``affectkit`` entry-point group
(pyproject.toml declares each as an entry point of the ``affectkit`` distribution).
"""
