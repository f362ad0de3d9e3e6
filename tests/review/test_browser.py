"""A reviewer's correction, made in Label Studio's own UI in a real browser, arrives on ``<task>.feedback``.

Review records go to ``<task>.review``; the bridge (``slm review bridge``) makes them tasks with the model's
answer as a prediction; Debian's chromium (:mod:`tests.review.browser`) logs in, opens one of the tasks,
changes the answer with the mouse and submits; the bridge publishes the verdict from Label Studio's webhook.
Real broker, real Label Studio, the bridge as a process.

``SLM_TEST_WRITE_SCREENSHOT=1`` also writes ``docs/review.png``: the sentiment task as the reviewer first sees it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.review.browser import LabellingView, chromium
from tests.review.conftest import produce_reviews, review_record
from tests.support.kafka_io import drain
from tests.support.processes import REPO_ROOT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCREENSHOT = Path(REPO_ROOT) / "docs" / "review.png"
MODEL = "test-model:1"  # review_record's model: the prediction's name in the labelling view


@pytest.fixture
def view(label_studio, tmp_path) -> Iterator[LabellingView]:
    """The browser, logged in to the session's Label Studio as its admin; evidence of a failure in tmp_path."""
    with chromium() as driver:
        page = LabellingView(driver, label_studio["url"], tmp_path / "browser")
        page.log_in(label_studio["username"], label_studio["password"])
        yield page


def _tasks(client, title: str, ids: list[str]) -> tuple[int, dict[str, int]]:
    """The project ``title`` and the Label Studio task id of each of ``ids``, once the bridge has made them all."""
    wait_for(lambda: client.find_project(title) is not None, 120, what=f"the project {title!r}")
    project = client.find_project(title)["id"]
    wait_for(lambda: len(client.find_tasks(project, ids)) == len(ids), 120, what=f"tasks for {ids}")
    return project, client.find_tasks(project, ids)


def _verdicts(bootstrap: str, topic: str, item_id: str) -> list[dict]:
    """``topic`` read from the start until a record for ``item_id`` is there (two minutes at most): every record."""
    def has_it(records: list) -> bool:
        return any(record.key == item_id.encode() for record in records)

    return [{"key": (record.key or b"").decode(), **json.loads(record.value)}
            for record in drain(bootstrap, topic, until=has_it, timeout=120)]


def test_a_sentiment_label_corrected_in_the_browser_arrives_on_feedback(
        start_bridge, kafka_bootstrap, topic_prefix, label_studio_client, view):
    texts = {"s-1": "Quarterly revenue in line with guidance, outlook unchanged",
             "s-2": "Northwind Traders shares slide 9% after the company cuts its full-year outlook",
             "s-3": "Contoso wins a five-year supply contract with a major carmaker"}
    produce_reviews(kafka_bootstrap, f"{topic_prefix}sentiment.review",
                    [(item_id, review_record(item_id, text, label="bullish", score=0.41)) for item_id, text in texts.items()])
    start_bridge("sentiment").wait_ready(120)
    project, tasks = _tasks(label_studio_client, f"{topic_prefix}sentiment", list(texts))

    view.open_task(project, tasks["s-2"])
    view.check(view.text() == texts["s-2"], f"the labelling view shows {view.text()!r}")
    # The model's answer is there: its prediction's tab, and its class already chosen in the draft.
    view.wait(lambda d: any(name.text == MODEL for name in d.find_elements(By.CSS_SELECTOR, ".lsf-annotation-button__name")),
              f"the prediction of {MODEL} among the annotation tabs")
    view.wait(lambda _: view.checked_choices() == ["bullish"], "the model's class 'bullish' pre-selected")
    if os.environ.get("SLM_TEST_WRITE_SCREENSHOT") == "1":
        view.screenshot(SCREENSHOT)

    view.pick_choice("bearish")
    view.submit()

    verdicts = _verdicts(kafka_bootstrap, f"{topic_prefix}sentiment.feedback", "s-2")
    view.check(verdicts, f"no verdict for s-2 on {topic_prefix}sentiment.feedback within 120s")
    view.check({v["key"] for v in verdicts} == {"s-2"}, f"verdicts for tasks nobody labelled: {verdicts}")
    verdict = verdicts[-1]
    view.check((verdict["id"], verdict["label"], verdict["source"]) == ("s-2", "bearish", "label-studio"),
               f"the verdict is {verdict}, not the class clicked")


def test_an_entity_span_added_in_the_browser_arrives_on_feedback(
        start_bridge, kafka_bootstrap, topic_prefix, label_studio_client, view):
    text = "Apple hired John Smith in Paris."
    person = (text.index("John Smith"), text.index("John Smith") + len("John Smith"))
    # The model found the company and missed the person.
    answer = [{"type": "ORG", "start": 0, "end": 5, "text": "Apple", "score": 0.42}]
    produce_reviews(kafka_bootstrap, f"{topic_prefix}entities.review",
                    [("e-1", review_record("e-1", "Tesco opens a store in Leeds.", task="entities", entities=[])),
                     ("e-2", review_record("e-2", text, task="entities", entities=answer))])
    start_bridge("entities").wait_ready(120)
    project, tasks = _tasks(label_studio_client, f"{topic_prefix}entities", ["e-1", "e-2"])

    view.open_task(project, tasks["e-2"])
    view.check(view.text() == text, f"the labelling view shows {view.text()!r}")
    view.wait(lambda _: view.regions() == [("ORG", 0, 5, "Apple")], "the model's span ORG 'Apple' shown")

    view.pick_label("PER")
    view.drag_over(*person)
    view.wait(lambda _: len(view.regions()) == 2, "a second region after the drag")
    view.check(view.regions() == [("ORG", 0, 5, "Apple"), ("PER", *person, "John Smith")],
               f"the regions after the drag are {view.regions()}")
    view.submit()

    verdicts = _verdicts(kafka_bootstrap, f"{topic_prefix}entities.feedback", "e-2")
    view.check(verdicts, f"no verdict for e-2 on {topic_prefix}entities.feedback within 120s")
    view.check({v["key"] for v in verdicts} == {"e-2"}, f"verdicts for tasks nobody labelled: {verdicts}")
    verdict = verdicts[-1]
    expected = [{"type": "ORG", "start": 0, "end": 5, "text": "Apple"},
                {"type": "PER", "start": person[0], "end": person[1], "text": "John Smith"}]
    view.check((verdict["id"], verdict["label"], verdict["source"]) == ("e-2", expected, "label-studio"),
               f"the verdict is {verdict}, not the model's span and the one dragged over")
