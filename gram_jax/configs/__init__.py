"""Configs that ship inside the package (found without the repository)."""
