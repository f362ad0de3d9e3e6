"""Each task kind's recipe (:class:`pipelines.recipe.KindRecipe`), found by the kind the registry gives.

Which kind a task or a model folder is, :mod:`shared.task_kinds` decides; this maps the kind to
its training and evaluation, for the CLI and the benchmarks.
"""

from __future__ import annotations

from pipelines.classification import ClassificationRecipe
from pipelines.recipe import KindRecipe
from pipelines.token_classification import EntityRecipe
from shared.task_kinds import CLASSIFICATION, ENTITIES, TaskKind

__all__ = ["RECIPES", "recipe_class"]

RECIPES: dict[str, type[KindRecipe]] = {CLASSIFICATION.name: ClassificationRecipe, ENTITIES.name: EntityRecipe}


def recipe_class(kind: TaskKind) -> type[KindRecipe]:
    return RECIPES[kind.name]
