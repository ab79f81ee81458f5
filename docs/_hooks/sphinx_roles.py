"""MkDocs hook: show the Sphinx roles of the package's docstrings as code.

mkdocstrings renders ``:class:`~pkg.mod.Name``` as ``:class:<code>~pkg.mod.Name</code>``. This hook makes
it ``<code>Name</code>`` (the last part after ``~``, as Sphinx would show it), for every role.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|data|attr|exc|obj|const):<code>(~?)([^<]*)</code>")


def _plain(match: re.Match[str]) -> str:
    target = match.group(2)
    if match.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"<code>{target}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """Rewrite the rendered page's roles before MkDocs writes it."""
    return _ROLE.sub(_plain, html)
