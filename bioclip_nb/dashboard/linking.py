"""Links to searches: the dashboard's state written to the page's address, and a shared link's
state repeated when the page opens (``share`` holds the format and the widget)."""

from __future__ import annotations

from .callbacks import guarded
from .share import UPLOAD_NOTE, LinkState
from .state import Level, Status
from .tab import Part
from .views import NO_TAXON


class Links(Part):
    """The page's link: written after each change, repeated when a shared link opens."""

    def link_state(self) -> LinkState:
        """The current search as a link."""
        s, q = self.session, self.session.query
        st = s.request
        state = LinkState(scope=st.scope, taxon=dict(st.taxon), nprobe=int(st.nprobe), top_n=int(st.top_n),
                          fold=bool(st.fold), selected=s.selected if s.hits is not None else None,
                          atlas=self.app.switcher.key)
        if q is not None and q.kind == "text":
            state.text = q.source
        elif q is not None and q.kind == "url":
            state.url = q.source
        elif q is not None and q.kind == "result" and q.source:
            state.like = int(q.source)
        return state

    def update(self) -> None:
        """Write the current search into the page's link."""
        q = self.session.query
        self.app.share.query = self.link_state().to_query()
        self.app.share.note = UPLOAD_NOTE if q is not None and q.kind == "image" else ""

    def on_copied(self, change) -> None:
        """The link was copied: say what it repeats (an uploaded photo cannot travel in it)."""
        q = self.session.query
        if q is not None and q.kind == "image":
            self.session.status = Status(UPLOAD_NOTE, Level.WARNING)
        else:
            self.session.status = Status("Link to this search copied: opening it repeats the search.")
        self.render_status()

    @guarded
    def apply(self, query: str) -> None:
        """Repeat the search a link describes: its settings, then its query, then its selection."""
        app = self.app
        state = LinkState.parse(query)
        c = app.controls
        if state.atlas and not app.switcher.select(state.atlas):
            keys = ", ".join(s.key for s in app.switcher.sources)
            self.session.status = Status(f"The link names the atlas {state.atlas!r}, which this dashboard does not hold "
                                         f"({keys}); its search is not repeated.", Level.WARNING)
            return

        def settings() -> None:
            c.scope.value = state.scope
            if state.nprobe is not None:
                c.nprobe.value = max(c.nprobe.min, min(c.nprobe.max, state.nprobe))
            if state.top_n is not None:
                c.top_n.value = max(c.top_n.min, min(c.top_n.max, state.top_n))
            c.fold.value = state.fold
            if state.taxon:
                rank, name = next(reversed(state.taxon.items()))
                c.taxon_rank.value = rank
                c.taxon_name.disabled, c.taxon_name.value = False, name
            else:
                c.taxon_rank.value = NO_TAXON

        app.with_settings_quiet(settings)
        app.read_settings()
        if not state.has_query:
            return
        if state.text:
            c.text.value = state.text
            self.session.set_text(state.text)
        elif state.url:
            c.url.value = state.url
            self.session.set_url(state.url)
        else:
            self.session.use_record(int(state.like))
        app.after_query()
        app.run_search()
        if state.selected is not None and self.session.hits is not None and state.selected in set(self.session.hits["id"]):
            app.select(state.selected)
