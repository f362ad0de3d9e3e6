"""Label Studio's labelling view in a real browser: Debian's chromium, driven by Selenium through Debian's
chromedriver (the same Debian build, so their versions match; ``make .cache/browser-ready`` installs both).

Headless, as root (no sandbox), at a fixed 1280x800 viewport, and cut off from everything but 127.0.0.1.
Every wait is an explicit one on the page's state; a wait or check that fails saves a screenshot, the page
source and the browser console into the test's folder and names them in the assertion message.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

__all__ = ["VIEWPORT", "LabellingView", "chromium"]

T = TypeVar("T")

#: The viewport (CSS pixels, device scale 1): the layout the tests click in, and the screenshot's size.
VIEWPORT = (1280, 800)

_ARGUMENTS = (
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--mute-audio", "--no-proxy-server",
    # Nothing but 127.0.0.1: any other host name fails to resolve (Label Studio's pages link a few outside hosts).
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--lang=en-US",
)

# The screen rectangle of the characters at ``start`` and ``end - 1`` of the text under ``root``, counting
# characters over its text nodes in document order (Label Studio's offsets for a Text object).
_CHARACTER_RECTS = """
const [root, start, end] = arguments;
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
const wanted = [start, end - 1], rects = [null, null];
let seen = 0, node;
while ((node = walker.nextNode())) {
  const length = node.textContent.length;
  wanted.forEach((at, i) => {
    if (rects[i] === null && at >= seen && at < seen + length) {
      const range = document.createRange();
      range.setStart(node, at - seen);
      range.setEnd(node, at - seen + 1);
      const box = range.getBoundingClientRect();
      rects[i] = {left: box.left, right: box.right, top: box.top, bottom: box.bottom};
    }
  });
  seen += length;
}
return rects;
"""


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Debian chromium under Debian's chromedriver, quit at the end."""
    binary, driver_binary = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        raise AssertionError("Debian's chromium and chromedriver are not installed: make .cache/browser-ready "
                             "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in _ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver path given: Selenium never runs its manager (which would try to download a driver).
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_binary))
    try:
        # The window's size includes room for a frame that headless has not: fix the viewport itself.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


class LabellingView:
    """Label Studio at ``url`` in ``driver``: log in, open a task's labelling view, label, submit.

    Selectors are Label Studio 1.23's: the login form's ``#email``/``#password``, a choice's
    ``input.ant-checkbox-input[name=<class>]`` in its ``label.lsf-choice__checkbox``, a span label's
    ``span.lsf-label_clickable`` with its ``.lsf-label__text``, the text's ``.lsf-richtext__line`` with its regions
    ``.htx-highlight[data-label][data-start][data-end]``, and the bottom bar's ``bottombar-submit-button`` and
    ``bottombar-update-button`` (shown once the annotation is saved).
    """

    def __init__(self, driver: WebDriver, url: str, evidence_dir: Path) -> None:
        self.driver = driver
        self.url = url.rstrip("/")
        self.evidence_dir = evidence_dir

    # -- failing with evidence ------------------------------------------------------------------------

    def evidence(self, name: str = "failure") -> str:
        """Save a screenshot, the page source and the console log; a line naming them for an assertion."""
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        saved = []
        try:
            png = self.evidence_dir / f"{name}.png"
            self.driver.save_screenshot(str(png))
            saved.append(png)
            html = self.evidence_dir / f"{name}.html"
            html.write_text(self.driver.page_source, encoding="utf-8")
            saved.append(html)
            console = self.evidence_dir / f"{name}.console.json"
            console.write_text(json.dumps(self.driver.get_log("browser"), indent=1), encoding="utf-8")
            saved.append(console)
        except WebDriverException as exc:  # a dead browser: say so, and keep the test's own failure
            return f"(browser evidence incomplete: {type(exc).__name__}; saved {', '.join(map(str, saved)) or 'nothing'})"
        return f"(at {self.driver.current_url}; screenshot, page source and console: {', '.join(map(str, saved))})"

    def check(self, ok: Any, message: str) -> None:
        """``assert ok``, with the browser's evidence in the message."""
        if not ok:
            raise AssertionError(f"{message} {self.evidence()}")

    def wait(self, condition: Callable[[WebDriver], T], what: str, timeout: float = 60) -> T:
        """``condition``'s first truthy answer, polled by a ``WebDriverWait``; an assertion error after ``timeout``."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition)
        except TimeoutException:
            raise AssertionError(f"{what}: not within {timeout:.0f}s {self.evidence()}") from None

    # -- pages ----------------------------------------------------------------------------------------

    def log_in(self, username: str, password: str) -> None:
        self.driver.get(f"{self.url}/user/login")
        self.wait(EC.visibility_of_element_located((By.ID, "email")), "the login form").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait(lambda d: "/user/login" not in d.current_url, "leaving the login page (wrong credentials?)")

    def open_task(self, project: int, task: int) -> None:
        """The data manager with ``task`` open in its labelling view, the annotation's interface shown."""
        self.driver.get(f"{self.url}/projects/{project}/data?task={task}")
        shown = self.wait(EC.presence_of_element_located((By.CSS_SELECTOR, ".lsf-current-task__task-id")),
                          f"the labelling view of task {task}")
        self.check(shown.text.strip() == str(task), f"the labelling view shows task {shown.text!r}, not {task}")
        self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, ".lsf-richtext__line")), "the task's text")

    def text(self) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, ".lsf-richtext__line").text

    # -- classification ---------------------------------------------------------------------------------

    def choice(self, label: str) -> WebElement:
        """The checkbox of the class ``label``."""
        return self.wait(EC.presence_of_element_located((By.CSS_SELECTOR, f"input.ant-checkbox-input[name='{label}']")),
                         f"the choice {label!r}")

    def checked_choices(self) -> list[str]:
        return [box.get_attribute("name") for box in
                self.driver.find_elements(By.CSS_SELECTOR, ".lsf-choices input.ant-checkbox-input") if box.is_selected()]

    def pick_choice(self, label: str) -> None:
        """Click the choice's label text, as a reviewer does; wait until it alone is checked."""
        self.choice(label)
        self.driver.find_element(
            By.XPATH, f"//label[contains(@class, 'lsf-choice__checkbox')][.//input[@name='{label}']]").click()
        self.wait(lambda _: self.checked_choices() == [label], f"{label!r} the only choice checked")

    # -- spans ------------------------------------------------------------------------------------------

    def pick_label(self, kind: str) -> None:
        """Click the span label ``kind`` above the text; wait until it is the selected one."""
        button = self.wait(EC.element_to_be_clickable((
            By.XPATH, f"//span[contains(@class, 'lsf-label_clickable')][span[contains(@class, 'lsf-label__text')]"
                      f"[normalize-space() = '{kind}']]")), f"the span label {kind!r}")
        button.click()
        self.wait(lambda _: "lsf-label_selected" in (button.get_attribute("class") or ""), f"{kind!r} selected")

    def regions(self) -> list[tuple[str, int, int, str]]:
        """The highlighted regions of the text: (type, start, end, text), in text order."""
        found = []
        for mark in self.driver.find_elements(By.CSS_SELECTOR, ".lsf-richtext__line .htx-highlight[data-label]"):
            kind = (mark.get_attribute("data-label") or "").split(":", 1)[-1]
            found.append((kind, int(mark.get_attribute("data-start")), int(mark.get_attribute("data-end")), mark.text))
        return sorted(found, key=lambda r: (r[1], r[2]))

    def drag_over(self, start: int, end: int) -> None:
        """Select the characters ``start:end`` of the text with the mouse: press a quarter into the first
        character, release three quarters into the last (the caret lands on their outer edges)."""
        line = self.driver.find_element(By.CSS_SELECTOR, ".lsf-richtext__line")
        first, last = self.driver.execute_script(_CHARACTER_RECTS, line, start, end)
        self.check(first and last, f"characters {start}:{end} not in the shown text {self.text()!r}")
        y = round((first["top"] + first["bottom"]) / 2)
        press = round(first["left"] + (first["right"] - first["left"]) / 4)
        release = round(last["right"] - (last["right"] - last["left"]) / 4)
        actions = ActionBuilder(self.driver)
        actions.pointer_action.move_to_location(press, y).pointer_down().move_to_location(release, y).pointer_up()
        actions.perform()

    # -- saving -----------------------------------------------------------------------------------------

    def submit(self) -> None:
        """Click Submit and wait until Label Studio has saved the annotation (its bar then offers Update)."""
        button = self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[data-testid='bottombar-submit-button']")),
                           "the Submit button")
        self.check(button.text.strip() == "Submit", f"the submit button reads {button.text!r}")
        button.click()
        self.wait(EC.presence_of_element_located((By.CSS_SELECTOR, "button[data-testid='bottombar-update-button']")),
                  "the annotation saved (the Update button in place of Submit)")

    def screenshot(self, path: Path) -> None:
        """The viewport as a PNG at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.check(self.driver.save_screenshot(str(path)), f"no screenshot written to {path}")
