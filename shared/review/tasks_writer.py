"""Review records into Label Studio tasks, exactly one task per record id.

Label Studio's import answers no task ids and would import a record twice, so each batch is looked up
first (by ``data.slm_id``), the missing ones imported, and looked up again: a batch counts as written
only when every id has its task. A record replayed after a crash, a restart or a rebalance finds its task
and is not imported again. One bridge writes a task's project at a time (the chart runs one replica, the
consumer group gives each partition to one member), so no two writers race between look-up and import.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.review.label_studio import LabelStudio, LabelStudioError
from shared.review.labelling import ReviewItem, task_payload

__all__ = ["TasksWriter"]

logger = logging.getLogger(__name__)


class TasksWriter:
    """Writes review items into the project ``project`` of ``label_studio``."""

    def __init__(self, label_studio: LabelStudio, project: int, *, entities: bool) -> None:
        self.label_studio = label_studio
        self.project = project
        self.entities = entities

    def write(self, items: Sequence[ReviewItem]) -> int:
        """Make sure every item has its task; returns how many tasks this call created.

        Raises:
            LabelStudioError: Label Studio is unreachable, refused a call, or an imported task is not
                there afterwards. Nothing is lost: the caller retries the whole batch.
        """
        unique = list({item.id: item for item in items}.values())
        if not unique:
            return 0
        ids = [item.id for item in unique]
        existing = self.label_studio.find_tasks(self.project, ids)
        missing = [item for item in unique if item.id not in existing]
        if missing:
            self.label_studio.import_tasks(self.project, [task_payload(item, entities=self.entities) for item in missing])
            found = self.label_studio.find_tasks(self.project, [item.id for item in missing])
            absent = len(missing) - len(found)
            if absent:
                raise LabelStudioError(f"{absent} of {len(missing)} imported tasks are not in project {self.project}")
        logger.debug("batch of %d review records: %d tasks created, %d existed", len(items), len(missing), len(existing))
        return len(missing)
