"""The recipes shipped with affectkit, installed as the package ``affectkit_recipes`` so that
``affectkit run quick`` works from any folder (:func:`affectkit.recipe.recipe_path`)."""
