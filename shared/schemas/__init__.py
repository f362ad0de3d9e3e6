"""Versioned message schemas: one request and one result model per task topic.

The same pydantic models type the REST API and the Kafka payloads.
"""

from shared.schemas.common import MAX_TEXT_CHARS, TaskRequestV1
from shared.schemas.classification import ClassificationResultV1, LabelScore
from shared.schemas.entities import EntitiesResultV1, EntitySpanV1

__all__ = ["MAX_TEXT_CHARS", "ClassificationResultV1", "EntitiesResultV1", "EntitySpanV1", "LabelScore",
           "TaskRequestV1"]
