"""A small client of Label Studio's REST API: exactly the calls the review bridge makes (Label Studio 1.23).

Two kinds of token work: a legacy token (``Authorization: Token <t>``), and a personal access token,
a JWT refresh token that this client exchanges at ``/api/token/refresh/`` for access tokens (they
last five minutes), exchanging again when one is refused. Errors never quote a response body: one
could echo the customer text of a task.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from shared.errors import SlmError
from shared.review.labelling import ID_KEY

__all__ = ["LabelStudio", "LabelStudioError"]

logger = logging.getLogger(__name__)

# Ids per lookup query: each is one filter item in the query string, and URLs stay well under 8 KiB.
_LOOKUP_CHUNK = 25
# Label Studio answers at most 100 per page.
_PAGE_SIZE = 100
# An import is answered when its tasks are written: a slow one must not time out and be sent again while
# it is still being written (the look-up that follows a retry would not see its tasks yet).
_IMPORT_TIMEOUT_S = 300.0
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class LabelStudioError(SlmError):
    """Label Studio could not be reached, or refused a call (status and endpoint, never the body).

    Attributes:
        status (`int | None`): the HTTP status it answered, ``None`` when it did not answer.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


class LabelStudio:
    """Label Studio at ``url`` with ``token``: projects, tasks, webhooks of one organisation.

    Args:
        url (`str`): base URL, e.g. ``http://127.0.0.1:8089``.
        token (`str`): a legacy API token or a personal access token (JWT refresh token).
        timeout_s (`float`): per call.
    """

    def __init__(self, url: str, token: str, timeout_s: float = 15.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._access: str | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _auth(self, renew: bool = False) -> str:
        if not _is_jwt(self._token):
            return f"Token {self._token}"
        with self._lock:
            if self._access is None or renew:
                answer = self._send("POST", "/api/token/refresh/", json={"refresh": self._token}, auth=None)
                self._access = answer.json()["access"]
            return f"Bearer {self._access}"

    def _send(self, method: str, path: str, *, auth: str | None, **kwargs) -> httpx.Response:
        headers = {"Authorization": auth} if auth else {}
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"Label Studio at {self.url} unreachable ({method} {path}): "
                                   f"{type(exc).__name__}") from None
        if response.status_code >= 400:
            raise LabelStudioError(f"Label Studio refused {method} {path}: HTTP {response.status_code}",
                                   response.status_code)
        return response

    def _call(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self._send(method, path, auth=self._auth(), **kwargs)
        except LabelStudioError as exc:
            if exc.status != 401 or not _is_jwt(self._token):
                raise
            response = self._send(method, path, auth=self._auth(renew=True), **kwargs)  # access token expired
        try:
            return response.json() if response.content else None
        except ValueError:
            raise LabelStudioError(f"Label Studio answered {method} {path} with no JSON") from None

    def _paged(self, path: str, params: dict, key: str) -> Iterator[dict]:
        """Every item of a paged list: ``{key: [...], "total" or "count": n}`` (or a bare list)."""
        page = 1
        while True:
            answer = self._call("GET", path, params={**params, "page": page, "page_size": _PAGE_SIZE})
            items = answer.get(key, []) if isinstance(answer, dict) else answer
            if not isinstance(items, list):
                raise LabelStudioError(f"Label Studio answered GET {path} with no {key!r} list")
            yield from items
            total = (answer.get("total", answer.get("count", 0)) if isinstance(answer, dict) else len(items)) or 0
            if len(items) < _PAGE_SIZE or page * _PAGE_SIZE >= total:
                return
            page += 1

    # -- calls ------------------------------------------------------------------------------------

    def find_project(self, title: str) -> dict | None:
        """The project titled exactly ``title`` (id, label_config...), or ``None``. Label Studio's title filter
        matches parts of titles too, so every page of its answer is read."""
        return next((p for p in self._paged("/api/projects", {"title": title}, "results") if p.get("title") == title),
                    None)

    def ensure_project(self, title: str, label_config: str) -> int:
        """The id of the project titled ``title``, created with ``label_config`` if there is none. An existing
        project whose interface differs (the model gained a class) gets ``label_config``."""
        project = self.find_project(title)
        if project is None:
            created = self._call("POST", "/api/projects", json={"title": title, "label_config": label_config})
            logger.info("created Label Studio project %d %r", created["id"], title)
            return created["id"]
        if project.get("label_config") != label_config:
            self._call("PATCH", f"/api/projects/{project['id']}", json={"label_config": label_config})
            logger.info("updated the labelling interface of Label Studio project %d %r", project["id"], title)
        return project["id"]

    def _tasks(self, project: int, query: dict, fields: str) -> Iterator[dict]:
        yield from self._paged("/api/tasks", {"project": project, "fields": fields, "query": json.dumps(query)}, "tasks")

    def find_tasks(self, project: int, ids: Sequence[str]) -> dict[str, int]:
        """Label Studio's task id of each of ``ids`` (review record ids) that has a task in ``project``."""
        found: dict[str, int] = {}
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            items = [{"filter": f"filter:tasks:data.{ID_KEY}", "operator": "equal", "type": "String", "value": item_id}
                     for item_id in ids[start:start + _LOOKUP_CHUNK]]
            query = {"filters": {"conjunction": "or", "items": items}}
            for task in self._tasks(project, query, "task_only"):
                data = task.get("data") if isinstance(task, dict) else None
                if isinstance(data, dict) and isinstance(data.get(ID_KEY), str):
                    found.setdefault(data[ID_KEY], task.get("id"))
        return found

    def review_ids(self, project: int) -> list[str]:
        """The review record id of every task in ``project``, one entry per task (a doubled task shows twice)."""
        return [(task.get("data") or {}).get(ID_KEY) for task in self._tasks(project, {}, "task_only")]

    def import_tasks(self, project: int, tasks: Sequence[dict]) -> None:
        """Create ``tasks`` (with their predictions) in ``project``; returns when they are written.

        Label Studio Community writes them before it answers; an edition that imports in the background
        answers an import id, which is then polled until that import has finished."""
        answer = self._call("POST", f"/api/projects/{project}/import", json=list(tasks), timeout=_IMPORT_TIMEOUT_S)
        if isinstance(answer, dict) and "import" in answer and "task_count" not in answer:
            self._wait_for_import(project, answer["import"])

    def _wait_for_import(self, project: int, import_id: int) -> None:
        deadline = time.monotonic() + _IMPORT_TIMEOUT_S
        while time.monotonic() < deadline:
            state = self._call("GET", f"/api/projects/{project}/imports/{import_id}")
            status = state.get("status") if isinstance(state, dict) else None
            if status == "completed":
                return
            if status == "failed":
                raise LabelStudioError(f"Label Studio's import {import_id} into project {project} failed")
            time.sleep(0.5)
        raise LabelStudioError(f"Label Studio's import {import_id} into project {project} did not finish in time")

    def annotated_tasks(self, project: int, updated_after: str | None) -> Iterator[dict]:
        """Tasks of ``project`` with their annotations, cancelled ones included, updated after ``updated_after``
        (an ISO time, ``None`` for all), oldest update first."""
        items = []
        if updated_after:
            items.append({"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
                          "value": updated_after})
        items.append({"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0})
        query = {"filters": {"conjunction": "and", "items": items}, "ordering": ["tasks:updated_at"]}
        yield from self._tasks(project, query, "all")

    def ensure_webhook(self, project: int, url: str, headers: dict[str, str]) -> int:
        """The project's webhook to ``url``, sending annotations created and updated with ``headers``;
        created, or brought up to date (a restarted bridge may carry a new secret)."""
        wanted = {"project": project, "url": url, "send_payload": True, "send_for_all_actions": False,
                  "actions": list(WEBHOOK_ACTIONS), "headers": headers, "is_active": True}
        for hook in self._call("GET", "/api/webhooks/", params={"project": project}):
            if hook.get("url") == url and hook.get("project") == project:
                self._call("PATCH", f"/api/webhooks/{hook['id']}/", json=wanted)
                return hook["id"]
        return self._call("POST", "/api/webhooks/", json=wanted)["id"]
