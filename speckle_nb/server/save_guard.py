"""Keep Speckle tokens out of saved notebooks: a Jupyter contents ``pre_save_hook``.

A user who prints ``speckle_nb.client()._token`` (or a credentials object's fields, or a
traceback that quotes a URL with ``access_code=``) would otherwise store that secret in the
``.ipynb`` file the next time the notebook is saved, and from there in git, e-mail and
shared drives. Before the Jupyter server writes a notebook, this hook replaces every Speckle
token in the notebook's **outputs** (``text/plain``, ``text/html``, stream text, error
``ename``/``evalue``/``traceback``, ``application/json`` and any other text or JSON
mimetype, and each output's metadata) and in its **widget state**
(``metadata.widgets``) with the visible marker ``[speckle token removed on save by
speckle-nb]``, and logs one WARNING naming the file and the count (never the token).

What counts as a token: 42 lowercase hex characters as a whole word (protocol §5: personal
access tokens, app tokens, refresh tokens and access codes all have this form). Longer or
shorter hex runs are left alone — Speckle object ids are 32 hex, git SHAs 40, SHA-256
digests 64 — and so is uppercase hex. ANSI colour codes (tracebacks), ``%XX`` escapes and
backslash escapes (``\\n``) in front of a token count as word boundaries, so a coloured,
URL-encoded or repr'd token is still found. Base64 payloads (``image/png``, ``image/jpeg``,
``image/gif``, ``image/webp``, ``application/pdf``) are skipped: they are not text.

**Why scrub, not refuse.** A hook may instead raise ``HTTPError`` and refuse the save with a
message. That would be worse for the person it protects: the refused save is the *whole*
notebook, so every edit since the last good save stays only in the browser tab (one closed
tab or crashed browser later, it is lost); JupyterLab's autosave retries every two minutes
and fails each time, filling the screen with save errors; and the user must find and clear
the offending output before any work can be saved. Scrubbing writes the user's work, keeps
the secret out of the file, and leaves a visible marker where the token was, so nothing
changes silently. (The open tab still shows the token until the output is cleared or the
notebook reloaded: the hook changes the file, not the browser's copy.)

**Scope.** Only notebooks saved through the contents API (the frontends' save, autosave and
"Save As", and notebook uploads sent as JSON) pass through a pre-save hook. Cell *sources* are
not changed — that is code the user typed, and rewriting it under them would be surprising —
but a token found there is counted and named in the warning so the user can move it to
``%speckle_token`` or ``SPECKLE_TOKEN``. Plain files (``.py``, ``.txt``), files uploaded as
base64, and files written by a kernel or a terminal do not pass through the hook.

Registration (in the extension, chained with any ``pre_save_hook`` already configured)::

    from .save_guard import register_save_guard
    register_save_guard(self.serverapp.contents_manager)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MARKER",
    "ScrubReport",
    "count_tokens",
    "pre_save_hook",
    "register_save_guard",
    "scrub_notebook",
    "scrub_text",
    "scrub_value",
]

#: What replaces a token in the saved file.
MARKER = "[speckle token removed on save by speckle-nb]"

log = logging.getLogger(__name__)

# A token is 42 lowercase hex chars with no letter or digit on either side. In front of it, an
# ANSI colour code (``\x1b[0;31m``), a ``%XX`` escape or a backslash escape (``\n``, ``\t``,
# ``\r``) also ends the word before it: group 1 keeps that prefix so it is written back.
_TOKEN = re.compile(
    r"(?:(\x1b\[[0-9;]*m|%[0-9A-Fa-f]{2}|\\[ntr])|(?<![0-9A-Za-z]))"
    r"[0-9a-f]{42}"
    r"(?![0-9A-Za-z])"
)
_TOKEN_LENGTH = 42

#: Output mimetypes holding base64 data, not text: never scanned.
_BINARY_MIMETYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "application/pdf"}
)


def scrub_text(text: str) -> tuple[str, int]:
    """``text`` with every token replaced by ``MARKER``, and how many were replaced."""
    if len(text) < _TOKEN_LENGTH:
        return text, 0
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return (match.group(1) or "") + MARKER

    scrubbed = _TOKEN.sub(replace, text)
    return scrubbed, count


def count_tokens(text: str) -> int:
    """How many tokens ``text`` holds (what ``scrub_text`` would replace)."""
    if len(text) < _TOKEN_LENGTH:
        return 0
    return sum(1 for _ in _TOKEN.finditer(text))


def scrub_value(value: Any) -> tuple[Any, int]:
    """A JSON value with every token in its strings replaced, and the count.

    Pure: ``value`` is not changed; containers are copied only along the paths that changed,
    so an unchanged value comes back as the very same object. Dict keys are not rewritten.
    """
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        total = 0
        items: list[Any] | None = None
        for index, item in enumerate(value):
            new, count = scrub_value(item)
            if count:
                if items is None:
                    items = list(value)
                items[index] = new
                total += count
        return (value if items is None else items), total
    if isinstance(value, dict):
        total = 0
        copy: dict[Any, Any] | None = None
        for key, item in value.items():
            new, count = scrub_value(item)
            if count:
                if copy is None:
                    copy = dict(value)
                copy[key] = new
                total += count
        return (value if copy is None else copy), total
    return value, 0


def _scrub_output(output: Any) -> tuple[Any, int]:
    if not isinstance(output, dict):
        return output, 0
    total = 0
    copy: dict[str, Any] | None = None

    def put(key: str, new: Any, count: int) -> None:
        nonlocal copy, total
        if count:
            if copy is None:
                copy = dict(output)
            copy[key] = new
            total += count

    for key, item in output.items():
        if key == "data" and isinstance(item, dict):
            data: dict[str, Any] | None = None
            data_total = 0
            for mimetype, payload in item.items():
                if mimetype in _BINARY_MIMETYPES:
                    continue
                # a str, a list of lines (nbformat's multiline string: a token holds no
                # newline, so it never spans two lines), or JSON (application/json)
                new, count = scrub_value(payload)
                if count:
                    if data is None:
                        data = dict(item)
                    data[mimetype] = new
                    data_total += count
            put(key, data, data_total)
        else:
            # text (stream), ename, evalue, traceback, metadata, name, anything else
            new, count = scrub_value(item)
            put(key, new, count)
    return (output if copy is None else copy), total


@dataclass(frozen=True)
class ScrubReport:
    """What ``scrub_notebook`` found: replaced in outputs and widget state; left in sources."""

    outputs: int = 0
    widget_state: int = 0
    in_sources: int = 0

    @property
    def removed(self) -> int:
        return self.outputs + self.widget_state


def scrub_notebook(nb: Mapping[str, Any]) -> tuple[dict[str, Any], ScrubReport]:
    """A copy of notebook JSON ``nb`` (nbformat 4) with tokens removed from every cell's
    outputs and from ``metadata.widgets``; sources are only counted. Pure: ``nb`` is not
    changed, and unchanged parts are shared with it."""
    result: dict[str, Any] = dict(nb)
    outputs_total = 0
    sources_total = 0
    cells = nb.get("cells")
    if isinstance(cells, list):
        new_cells: list[Any] | None = None
        for index, cell in enumerate(cells):
            if not isinstance(cell, dict):
                continue
            source = cell.get("source")
            if isinstance(source, str):
                sources_total += count_tokens(source)
            elif isinstance(source, list):
                sources_total += sum(count_tokens(s) for s in source if isinstance(s, str))
            outputs = cell.get("outputs")
            if not isinstance(outputs, list):
                continue
            new_outputs: list[Any] | None = None
            for position, output in enumerate(outputs):
                new, count = _scrub_output(output)
                if count:
                    if new_outputs is None:
                        new_outputs = list(outputs)
                    new_outputs[position] = new
                    outputs_total += count
            if new_outputs is not None:
                if new_cells is None:
                    new_cells = list(cells)
                new_cells[index] = {**cell, "outputs": new_outputs}
        if new_cells is not None:
            result["cells"] = new_cells
    widgets_total = 0
    metadata = nb.get("metadata")
    if isinstance(metadata, dict) and "widgets" in metadata:
        widgets, widgets_total = scrub_value(metadata["widgets"])
        if widgets_total:
            result["metadata"] = {**metadata, "widgets": widgets}
    return result, ScrubReport(outputs_total, widgets_total, sources_total)


def pre_save_hook(
    model: dict[str, Any], path: str, contents_manager: Any = None, **kwargs: Any
) -> None:
    """jupyter_server's pre-save hook: ``hook(model=..., path=..., contents_manager=...)``.

    Rewrites ``model["content"]`` of a notebook in place (the contents manager then writes
    it). Never raises: a failing hook must not cost the user a save.
    """
    logger = getattr(contents_manager, "log", None) or log
    try:
        if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
            return
        scrubbed, report = scrub_notebook(model["content"])
    except Exception:
        logger.exception("speckle-nb: the token check before saving %s failed", path)
        return
    if report.removed:
        model["content"] = scrubbed
        logger.warning(
            "speckle-nb: removed %d Speckle token(s) from the outputs or widget state of %s "
            "before saving; each is replaced by %r. Clear the output that showed it: the "
            "open tab still does.",
            report.removed,
            path,
            MARKER,
        )
    if report.in_sources:
        logger.warning(
            "speckle-nb: %s has %d Speckle token(s) in cell source, saved unchanged; use "
            "%%speckle_token or SPECKLE_TOKEN instead of a token in code.",
            path,
            report.in_sources,
        )


def register_save_guard(contents_manager: Any) -> bool:
    """Add ``pre_save_hook`` to ``contents_manager``'s hooks, after any configured
    ``ContentsManager.pre_save_hook`` (which keeps running). Idempotent; returns whether it
    was added now."""
    hooks: list[Callable[..., Any]] | None = getattr(contents_manager, "_pre_save_hooks", None)
    if hooks is not None and pre_save_hook in hooks:
        return False
    register = getattr(contents_manager, "register_pre_save_hook", None)
    if register is None:  # a contents manager without hook support
        log.warning(
            "speckle-nb: %s cannot run pre-save hooks; printed tokens are not removed "
            "from saved notebooks",
            type(contents_manager).__name__,
        )
        return False
    register(pre_save_hook)
    return True
