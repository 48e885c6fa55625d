"""The dashboard: wires the session, the background jobs and the tabs (``tabs.REGISTRY``).

>>> from bioclip_nb.dashboard import Dashboard
>>> Dashboard.from_settings()        # the last expression of a cell: displays itself
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ipywidgets as w

from ..config import Settings
from ..core.locate import locate_atlases
from ..errors import AtlasError, ServerError
from ..request import SearchRequest
from . import html
from .callbacks import guarded
from .jobs import Job, JobRunner
from .landmarks import PageRoles, landmark
from .linking import Links
from .share import ShareLink, in_voila, query_string_from_env
from .sources import Source, local_sources, served_sources
from .state import EXPECTED_ERRORS, Level, SearchSession, Status
from .switching import ModelSwitch, header_html
from .tab import Tab
from .tabs import REGISTRY
from .views import NO_TAXON, Controls, Detail, show_mark


class Dashboard:
    """The bioclip-nb app. Build with :meth:`from_settings` (or hand in a session).

    It holds the session (all state), the background jobs and the tabs (``tabs``, by key, in
    the order of ``tabs.REGISTRY``), and routes the controls' events; each tab owns its
    widgets and actions."""

    def __init__(self, session: SearchSession, jobs: JobRunner | None = None, link: str = "",
                 sources: list[Source] | None = None):
        """``sources``: the atlases the model selector switches between, the session's first
        (default: the session's one atlas, and no selector)."""
        self.session = session
        self.sources = sources or [Source("", session.atlas, session.encoder_factory, session.fetcher,
                                          session._figures, session.places.source)]
        self.jobs = jobs or JobRunner()      # long work off the message thread (dashboard.jobs)
        self.link = link                     # a shared link's query string, repeated once the page is built
        self.links = Links(self)             # the page's link, written and repeated
        self.tabs: dict[str, Tab] = {}       # built with the page (``widget``)
        self._widget: w.Widget | None = None
        self._taxon_cache: dict[str, list[str]] = {}
        self._quiet = False                  # controls changed by code, not by a person: no search

    @classmethod
    def from_settings(cls, atlas: str | Path | Sequence[str | Path] | None = None, settings: Settings | None = None,
                      device: str = "auto", server: str | None = None, link: str | None = None) -> Dashboard | w.Widget:
        """A dashboard on ``atlas`` (default: as ARCHITECTURE says: env, downloads, then the demo).
        Several atlases (a list, or ``BIOCLIP_NB_ATLAS`` naming several) give a model selector.

        With ``server`` (a URL, or ``BIOCLIP_NB_SERVER``) the atlases, the models and the image
        fetcher are the server's: this kernel holds none of them. ``link`` is a shared link's
        query string (under Voilà, the page's own). If an atlas or the server cannot be
        reached, returns a widget explaining why instead of raising.
        """
        settings = settings or Settings.from_env()
        server = server or settings.server
        link = query_string_from_env() if link is None else link
        try:
            if server:
                sources = served_sources(server, settings)
            else:
                named = [atlas] if isinstance(atlas, str | Path) else atlas
                sources = local_sources(locate_atlases(named, settings), settings, device)
        except (ServerError, LookupError) as exc:
            return w.HTML(html.CSS + html.status(f"Cannot reach the bioclip-nb server: {exc}", "error"))
        except (AtlasError, OSError, ValueError) as exc:
            return w.HTML(html.CSS + html.status(f"Cannot open the atlas: {exc}", "error"))
        first = sources[0]
        session = SearchSession(first.atlas, first.encoder, first.fetcher, figures=first.figures,
                                occurrences=first.occurrences)
        session.server = first.atlas.client.url if server else None
        return cls(session, link=link, sources=sources)

    # ------------------------------------------------------------------ display
    @property
    def widget(self) -> w.Widget:
        """The root widget, built on first use."""
        if self._widget is None:
            self._build()
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _build(self) -> None:
        s = self.session
        self.controls = Controls(s)
        self.detail = Detail(self.more_like, on_mark=lambda marked: self.mark(self.session.selected, marked))
        self.share = ShareLink(write_url=in_voila())
        self.share.observe(self.links.on_copied, names="copies")
        self.status = w.HTML()
        self.tabs = {cls.key: cls(self) for cls in REGISTRY if cls.wanted(self)}
        self.tab_bar = w.Tab(children=[t.widget for t in self.tabs.values()])
        for i, tab in enumerate(self.tabs.values()):
            self.tab_bar.set_title(i, tab.title)
        self.header = header = w.HTML(header_html(self))                   # a <header>: the banner landmark
        self.switcher = ModelSwitch(self, self.sources)
        self.controls.widget.children = (self.switcher.widget, *self.controls.widget.children)
        middle = landmark(w.VBox([self.status, self.share, self.tab_bar], layout=w.Layout(flex="1 1 420px", min_width="420px",
                                                                                          padding="4px")), "main", "Results")
        landmark(self.controls.widget, "search", "Query and settings")
        landmark(self.detail.widget, "complementary", "Selected result")
        body = w.HBox([self.controls.widget, middle, self.detail.widget], layout=w.Layout(flex_flow="row wrap",
                                                                                          align_items="flex-start"))
        self._widget = w.VBox([header, PageRoles(), body])
        self._widget.add_class("bnb-dashboard")
        c = self.controls
        c.upload.observe(self._on_upload, names="value")
        c.text_button.on_click(lambda _b: self.use_text())
        c.url_button.on_click(lambda _b: self.use_url())
        c.search.on_click(lambda _b: self.search())
        c.taxon_rank.observe(self._on_taxon_rank, names="value")
        self.tab_bar.observe(self._on_tab, names="selected_index")
        for ctl in (c.scope, c.nprobe, c.top_n, c.taxon_name, c.fold):
            ctl.observe(self._on_setting, names="value")
        if s.atlas.scope_counts(compute=False) is None:      # not prepared: count once, in the background
            self.jobs.start("scope-counts", self._count_scopes, lambda exc: None)
        self.render_status()
        if self.link:
            self.links.apply(self.link)

    def _count_scopes(self, job: Job) -> None:
        self.session.atlas.scope_counts()
        job.apply(self._show_scope_counts)

    def on_atlas_changed(self) -> None:
        """Another atlas is searched (the model selector): its banner, its controls' ranges, its names."""
        self.header.value = header_html(self)
        self.with_settings_quiet(lambda: self.controls.for_atlas(self.session))
        self._taxon_cache.clear()
        if self.controls.taxon_rank.value != NO_TAXON:
            self.controls.set_taxon_options(self.session.atlas.taxon_values(self.controls.taxon_rank.value, limit=500))
        if self.session.atlas.scope_counts(compute=False) is None:
            self.jobs.start("scope-counts", self._count_scopes, lambda exc: None)

    def _show_scope_counts(self) -> None:
        """Put the scope counts in the menu once they are known. Also called after each search:
        an update sent while Voilà is still connecting the page can be lost."""
        counts = self.session.atlas.scope_counts(compute=False)
        if counts and not self.controls.has_scope_counts():
            self.with_settings_quiet(lambda: self.controls.set_scope_counts(counts))

    def with_settings_quiet(self, fn) -> None:
        """Change controls without their change firing a search."""
        self._quiet = True
        try:
            fn()
        finally:
            self._quiet = False

    # ------------------------------------------------------------------ actions
    @guarded
    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        if len(files) > 1:
            self.tabs["batch"].run(files)
            return
        f = files[0]
        self.set_busy(True, f"Encoding {f['name']}...")
        self.session.cancel_fetches()
        self.session.set_upload(bytes(f["content"]), name=f["name"])
        self.after_query()

    def upload_bytes(self, data: bytes, name: str = "upload.jpg") -> None:
        """Programmatic upload (same path as the widget's)."""
        self._on_upload({"new": ({"name": name, "content": memoryview(data), "type": "", "size": len(data)},)})

    @guarded
    def use_text(self) -> None:
        self.set_busy(True, "Encoding the text...")
        self.session.set_text(self.controls.text.value)
        self.after_query()
        self.run_search()

    @guarded
    def use_url(self) -> None:
        self.set_busy(True, "Fetching the image URL...")
        self.session.set_url(self.controls.url.value)
        self.after_query()

    @guarded
    def more_like(self) -> None:
        if self.session.selected is None:
            return
        self.set_busy(True, "Searching with the selected result...")
        self.session.more_like(self.session.selected)
        self.after_query()
        self.run_search()

    @guarded
    def search(self) -> None:
        self.run_search()

    def run_search(self) -> None:
        """Search with the current query and settings, and show the results in every tab."""
        self.set_busy(True, "Searching...")
        self.read_settings()
        generation = self.jobs.new_generation()     # the previous search's jobs stop here
        hits = self.session.search()
        self._show_scope_counts()
        for tab in self.tabs.values():
            tab.on_results()
        s = self.session
        if s.selected is not None:
            self.detail.show(s, s.hit(s.selected), None)
        self.links.update()
        if len(hits):
            self._start_fetch(generation)

    @guarded
    def _on_setting(self, change) -> None:
        if self._quiet:
            return
        self.read_settings()
        if self.session.encoding is not None and self.session.hits is not None:
            self.run_search()       # re-search with the same encoding: no re-encode

    @guarded
    def _on_taxon_rank(self, change) -> None:
        rank = change["new"]
        c = self.controls
        if rank == NO_TAXON:
            c.taxon_name.disabled, c.taxon_name.value = True, ""
            c.set_taxon_options([])
        else:
            if rank not in self._taxon_cache:
                self._taxon_cache[rank] = self.session.atlas.taxon_values(rank, limit=500)
            c.set_taxon_options(self._taxon_cache[rank])
            c.taxon_name.disabled = False
        self._on_setting(change)

    @guarded
    def mark(self, hit_id: int | None, marked: bool) -> None:
        """Mark a result (or unmark it); the card and the detail panel show the same."""
        if hit_id is None:
            return
        self.session.set_mark(hit_id, marked)
        self.tabs["gallery"].set_mark(hit_id, marked)
        if self.session.selected == int(hit_id):
            show_mark(self.detail.mark, marked)
        n = len(self.session.marks)
        self.session.status = Status(f"{n} result{'s' if n != 1 else ''} marked: Export > Marked only exports "
                                     "just those. A new query clears the marks.")

    @guarded
    def select(self, hit_id: int) -> None:
        row = self.session.select(hit_id)
        self.tabs["gallery"].set_selected(hit_id)
        self.links.update()
        self.detail.show(self.session, row, self.session.images.get(int(hit_id)))   # the thumbnail at once
        session = self.session

        def work(job: Job) -> None:
            full = session.full_image(hit_id, cancel=job.cancel)
            job.apply(lambda: self._show_if_selected(hit_id, row, full))

        self.jobs.start("select", work, self.background_error, generation=self.jobs.generation)

    def _show_if_selected(self, hit_id: int, row, full) -> None:
        if self.session.selected == int(hit_id):
            self.detail.show(self.session, row, full)

    # ------------------------------------------------------------------ background fetch
    def _start_fetch(self, generation: int) -> None:
        session = self.session

        def work(job: Job) -> None:
            gallery = self.tabs["gallery"]
            session.fetch_images(on_result=lambda r: job.apply(lambda: gallery.fill(r)), cancel=job.cancel)
            job.apply(self._gallery_done)

        self.jobs.start("gallery", work, self.background_error, generation=generation)

    def _gallery_done(self) -> None:
        self.render_status()
        if self.session.selected is not None and self.session.hits is not None:
            self.show_selected_quietly()
        self.tabs["where"].start_lookup()

    def background_error(self, exc: BaseException) -> None:
        """A background job failed: say so in the status line; the results stay listed."""
        message = str(exc) if isinstance(exc, EXPECTED_ERRORS) else (
            f"Something went wrong in the background ({type(exc).__name__}: {exc}); the results are still listed.")
        self.session.status = Status(message, Level.WARNING)
        self.tabs["export"].done()
        self.render_status()

    def show_selected_quietly(self) -> None:
        """Redraw the detail panel of the selected result (if it is still among the results)."""
        try:
            row = self.session.hit(self.session.selected)
            self.detail.show(self.session, row, self.session.images.get(self.session.selected))
        except ValueError:
            pass  # the results changed under us: the next render shows the new ones

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the background jobs are done (tests, scripts)."""
        self.jobs.wait(timeout)

    # ------------------------------------------------------------------ rendering
    def read_settings(self) -> None:
        """Copy the controls into the session's settings."""
        c = self.controls
        name = (c.taxon_name.value or "").strip()
        self.session.request = SearchRequest(
            top_n=int(c.top_n.value), nprobe=int(c.nprobe.value), scope=c.scope.value, fold=bool(c.fold.value),
            taxon={c.taxon_rank.value: name} if c.taxon_rank.value != NO_TAXON and name else {}).for_atlas(self.session.atlas.nlist)

    def after_query(self) -> None:
        """Show a new query: its picture, and every tab's first look at it."""
        query = self.session.query
        self.controls.show_query(query.image if query else None, query.label if query else "")
        for tab in self.tabs.values():
            tab.on_query()
        self.detail.show(self.session, None, None)

    def clear_query_display(self) -> None:
        """No single query is shown (a batch: each row opens its own)."""
        self.controls.show_query(None)
        self.detail.show(self.session, None, None)

    @property
    def current_tab(self) -> str:
        """The key of the open tab."""
        return list(self.tabs)[self.tab_bar.selected_index or 0]

    def show_tab(self, key: str) -> None:
        """Open the tab ``key`` (``tabs.REGISTRY`` gives the order; nothing else does)."""
        self.tab_bar.selected_index = list(self.tabs).index(key)

    @guarded
    def _on_tab(self, change) -> None:
        self.tabs[self.current_tab].on_shown()

    def render_status(self) -> None:
        """Show the session's status line."""
        if self._widget is not None:
            st = self.session.status
            self.status.value = html.status(st.message, st.level.value)

    def set_busy(self, busy: bool, message: str | None = None) -> None:
        """Disable the Search button while working, with a message."""
        if self._widget is None:
            return
        self.controls.search.disabled = busy
        if busy and message:
            self.session.status = Status(message, Level.WORKING)
            self.render_status()
