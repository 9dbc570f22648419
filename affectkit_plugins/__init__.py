"""affectkit's built-in plugins, installed as ``affectkit_plugins``.

Each module registers components through the hooks in :mod:`affectkit.hookspecs`, exactly
as a third-party package would; :data:`affectkit.registry.DEFAULT_PLUGINS` lists them.
"""
