"""What every dashboard tab is, and what it may ask of the dashboard.

A tab is a small object with its widgets and its actions. It is built with the dashboard
(:class:`App`: the session, the background jobs, the status line) and told when something
changed:

``on_query``    a new query (photo, text, URL, result) is set;
``on_results``  a search gave new results (a hidden tab may just note that it is stale);
``on_shown``    it was opened.

The tabs and their order are listed once, in ``tabs.REGISTRY``; nothing names a tab's
position (the dashboard opens one with ``show_tab(key)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

import ipywidgets as w

from .jobs import JobRunner
from .share import ShareLink
from .sources import Source
from .state import SearchSession
from .views import Controls


class App(Protocol):
    """The dashboard as its tabs see it."""

    session: SearchSession
    sources: list[Source]             # the atlases the model selector switches between
    jobs: JobRunner
    tabs: dict[str, Tab]
    current_tab: str
    controls: Controls
    share: ShareLink

    def select(self, hit_id: int) -> None: ...

    def mark(self, hit_id: int | None, marked: bool) -> None: ...

    def show_tab(self, key: str) -> None: ...

    def render_status(self) -> None: ...

    def set_busy(self, busy: bool, message: str | None = None) -> None: ...

    def read_settings(self) -> None: ...

    def after_query(self) -> None: ...

    def run_search(self) -> None: ...

    def show_selected_quietly(self) -> None: ...

    def background_error(self, exc: BaseException) -> None: ...

    def clear_query_display(self) -> None: ...

    def with_settings_quiet(self, change: Callable[[], None]) -> None: ...


class Part:
    """A piece of the dashboard that acts through it: the session, the status line, the Search
    button (what ``callbacks.guarded`` needs of a method's owner)."""

    def __init__(self, app: App):
        self.app = app

    @property
    def session(self) -> SearchSession:
        """The dashboard's session (what every action reads and changes)."""
        return self.app.session

    def render_status(self) -> None:
        """Show the session's status line (after an action, see ``callbacks.guarded``)."""
        self.app.render_status()

    def set_busy(self, busy: bool, message: str | None = None) -> None:
        """Disable the Search button while working, with a message."""
        self.app.set_busy(busy, message)


class Tab(Part):
    """One tab: ``key`` (how code names it), ``title`` (what people read), ``widget``."""

    key: ClassVar[str]
    title: ClassVar[str]
    widget: w.Widget

    @classmethod
    def wanted(cls, app: App) -> bool:
        """Whether this dashboard shows the tab (all do, but for one that needs what it lacks)."""
        return True

    def on_query(self) -> None:
        """A new query was set."""

    def on_results(self) -> None:
        """A search gave new results."""

    def on_shown(self) -> None:
        """The tab was opened."""


class DrawnWhenShown(Tab):
    """A tab whose drawing costs more than a search: new results only mark it ``stale``; it
    draws (:meth:`render`) when it is open, or once it is opened."""

    stale: bool = True

    def on_results(self) -> None:
        self.stale = True
        if self.app.current_tab == self.key:
            self.render()

    def on_shown(self) -> None:
        self.render()

    def render(self) -> None:
        """Draw for the current search if ``stale`` (cheap otherwise)."""
        raise NotImplementedError
