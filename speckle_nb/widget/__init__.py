"""The sign-in panel: an anywidget (ESM and CSS in files beside it, no JS build step).

Importing this package imports ipywidgets and anywidget; nothing else in speckle-nb does, so
``import speckle_nb`` stays cheap. ``speckle_nb.sign_in()`` creates and connects the panel.
"""

from __future__ import annotations

from .panel import STATES, SignInPanel

__all__ = ["STATES", "SignInPanel"]
