"""Links to searches: the dashboard's state written to the page's address, and a shared link's
state repeated when the page opens (``share`` holds the format and the widget)."""

from __future__ import annotations

from .callbacks import guarded
from .share import UPLOAD_NOTE, LinkState
from .state import Level, Status
from .views import NO_TAXON


class LinkActions:
    """Mixed into ``Dashboard``: needs ``session``, ``controls``, ``share`` and the search actions."""

    def link_state(self) -> LinkState:
        """The current search as a link."""
        s, q = self.session, self.session.query
        st = s.settings
        state = LinkState(scope=st.scope, taxon=dict(st.taxon), nprobe=int(st.nprobe), top_n=int(st.top_n),
                          fold=bool(st.fold), selected=s.selected if s.hits is not None else None)
        if q is not None and q.kind == "text":
            state.text = q.source
        elif q is not None and q.kind == "url":
            state.url = q.source
        elif q is not None and q.kind == "result" and q.source:
            state.like = int(q.source)
        return state

    def _update_link(self) -> None:
        q = self.session.query
        self.share.query = self.link_state().to_query()
        self.share.note = UPLOAD_NOTE if q is not None and q.kind == "image" else ""

    def _on_link_copied(self, change) -> None:
        q = self.session.query
        if q is not None and q.kind == "image":
            self.session.status = Status(UPLOAD_NOTE, Level.WARNING)
        else:
            self.session.status = Status("Link to this search copied: opening it repeats the search.")
        self._render_status()

    @guarded
    def apply_link(self, query: str) -> None:
        """Repeat the search a link describes: its settings, then its query, then its selection."""
        state = LinkState.parse(query)
        c = self.controls

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

        self._with_settings_quiet(settings)
        self._read_settings()
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
        self._after_query()
        self._search()
        if state.selected is not None and self.session.hits is not None and state.selected in set(self.session.hits["id"]):
            self.select(state.selected)
