"""mkdocs hook: the site's home page is the repository's README.md.

The README is the front page on GitHub and links the guides as ``docs/<page>.md``; on the site the
same links point at ``<page>.md``. Links to other files of the repository (``models/README.md``, the
charts' READMEs) become repository-root links (``/models/README.md``), as on the guides' pages.
"""

from __future__ import annotations

import re
from pathlib import Path

_LINK = re.compile(r"\]\((?!https?://|#|/)([^)\s]+)\)")


def _site_link(match: re.Match) -> str:
    target = match.group(1)
    if target.startswith("docs/"):
        return f"]({target[len('docs/'):]})"
    return f"](/{target})"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != "index.md":
        return markdown
    readme = Path(config["config_file_path"]).parent / "README.md"
    return _LINK.sub(_site_link, readme.read_text(encoding="utf-8"))
