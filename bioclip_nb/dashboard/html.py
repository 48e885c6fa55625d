"""HTML for the dashboard: one CSS block, and every piece of data escaped.

Common names, publishers and URLs are community data; nothing from the data reaches the page
without ``html.escape`` (and links are only http/https).
"""

from __future__ import annotations

import base64
from html import escape

import pandas as pd

from ..encoders import Prediction
from ..images.fetch import FetchResult
from ..layout import ATLAS_URL_SCHEME, BIOCLIP2, RANKS, display_name
from ..names import clean
from ..names import scientific_name as binomial
from ..outputs.results import safe_url
from ..taxonomy import Consensus, TaxonNode
from .wording import WHY

CSS = """
<style>
/* Colours from JupyterLab's theme variables (light fallbacks, each at least 4.5:1 on its
   background), so the dark theme is legible; the status lines carry their own background. */
.bnb-dashboard { color: var(--jp-ui-font-color1, #1f1f1f); }
.bnb-header h1 { font-size: 18px; margin: 4px 0; }
.bnb-h2 { font-size: 14px; font-weight: bold; margin: 6px 0 2px 0; }
.bnb-header .bnb-about, .bnb-note { font-size: 12px; color: var(--jp-ui-font-color2, #555); }
/* ipywidgets greys the inactive tabs' labels to 4.45:1 (#6d6d6d on #eee): below WCAG AA */
.bnb-dashboard .lm-TabBar-tab, .bnb-dashboard .p-TabBar-tab { color: var(--jp-ui-font-color1, #1f1f1f) !important;
  flex: 0 1 auto !important; padding: 0 8px !important; }   /* as wide as its label: "Where and when" in full */
.bnb-dashboard .widget-label, .bnb-dashboard .widget-readout { color: var(--jp-widgets-label-color, var(--jp-ui-font-color1, #1f1f1f)); }
.bnb-status { padding: 4px 8px; border-radius: 4px; font-size: 13px; }
.bnb-status.info { background: #eef5ee; color: #1f4d1f; }
.bnb-status.working { background: #eef2f8; color: #1f3550; }
.bnb-status.warning { background: #fff6e0; color: #5c4400; }
.bnb-status.error { background: #fdecea; color: #7a1c12; }
.bnb-missing { width: 160px; height: 160px; display: flex; align-items: center; justify-content: center;
  text-align: center; background: var(--jp-layout-color2, #f2f2f2); color: var(--jp-ui-font-color1, #1f1f1f);
  font-size: 12px; border-radius: 4px; padding: 6px; box-sizing: border-box; }
.bnb-table { border-collapse: collapse; font-size: 13px; }
.bnb-table td, .bnb-table th { padding: 2px 8px; border-bottom: 1px solid var(--jp-border-color2, #e5e5e5); text-align: left; }
.bnb-compare { table-layout: fixed; width: 100%; }
.bnb-wrap { overflow-wrap: anywhere; }
.bnb-tree ul { list-style: none; padding-left: 16px; margin: 0; }
.bnb-tree li { font-size: 13px; }
.bnb-tree .rank { color: var(--jp-ui-font-color2, #555); font-size: 11px; }
.bnb-missing-name { color: var(--jp-ui-font-color2, #555); font-style: italic; }
</style>
"""

MISSING = '<span class="bnb-missing-name">not given</span>'


def text(value: object) -> str:
    """A value from the data, escaped; missing values shown as such."""
    name = clean(value)
    return escape(name) if name is not None else MISSING


def picture(data: bytes, alt: str, width: int | None = 150) -> str:
    """An image with its alternative text (an ``ipywidgets.Image`` cannot carry one)."""
    mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/webp" if data[8:12] == b"WEBP" else "image/jpeg"
    src = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    size = f"max-width:{width}px" if width else "max-width:100%"
    return f'<img class="bnb-picture" src="{src}" alt="{escape(alt, quote=True)}" style="{size};display:block">'


def header(atlas, server: str | None = None) -> str:
    """The page's title and what it searches: the atlas, its size and model, the server."""
    served = f" · served by {escape(server)}" if server else ""
    return (f'<header class="bnb-header"><h1>bioclip-nb</h1><div class="bnb-about">atlas {escape(str(atlas.path))} · '
            f"{atlas.count:,} records · model {escape(display_name(atlas.model))} · similarity is cosine "
            f"(1 = identical){served}</div></header>")


def status(message: str, level: str) -> str:
    return f'<div class="bnb-status {escape(level)}">{escape(message)}</div>'


def scientific(row: pd.Series) -> str:
    return binomial(row.get("genus"), row.get("species")) or "unidentified"


def placeholder(result: FetchResult) -> str:
    """Why an image is not shown (the gallery's cards say it themselves: ``cards.js``)."""
    return f'<div class="bnb-missing" title="{escape(result.message)}">{escape(WHY.get(result.status, "Unavailable"))}</div>'


def link(url: object, label: str) -> str:
    """An http(s) link, or plain text for anything else."""
    u = safe_url(url)
    if u is None:
        return MISSING
    return f'<a href="{escape(u, quote=True)}" target="_blank" rel="noopener noreferrer">{escape(label)}</a>'


def detail_table(row: pd.Series) -> str:
    rows = [f"<tr><th>{escape(r)}</th><td>{text(row.get(r)) if r != 'species' else text(scientific(row) if clean(row.get('species')) else None)}</td></tr>"
            for r in RANKS]
    rows.append(f"<tr><th>common name</th><td>{text(row.get('common_name'))}</td></tr>")
    return f'<table class="bnb-table bnb-taxonomy">{"".join(rows)}</table>'


def source_table(row: pd.Series, metric: str) -> str:
    dist_label = "distance (squared L2)" if metric == "l2" else "score (inner product)"
    items = [
        ("dataset", text(row.get("source_dataset"))), ("publisher", text(row.get("publisher"))),
        ("image type", text(row.get("img_type"))), ("record id", text(row.get("source_id"))),
        ("occurrence", link(row.get("occurrence_url"), "GBIF occurrence page")),
        ("original image", "kept in this atlas" if str(row.get("url") or "").startswith(ATLAS_URL_SCHEME)
                           else link(row.get("url"), "open original")),
        ("similarity (cosine)", f"{float(row['similarity']):.4f}" + (
            " (exact, from the full vector)" if bool(row.get("exact", False)) else " (estimate from the PQ code)")),
        (dist_label, f"{float(row['distance']):.4f}"),
        ("in BioCLIP 2 training", "yes" if bool(row.get("in_bioclip2_training")) else "no"),
        ("atlas id", str(int(row["id"]))),
    ]
    return '<table class="bnb-table bnb-source">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items) + "</table>"


def tree(node: TaxonNode | None) -> str:
    if node is None:
        return "<p>No results yet.</p>"

    def render(n: TaxonNode) -> str:
        kids = sorted((n.children or {}).values(), key=lambda c: (-c.count, c.name or ""))
        inner = "".join(
            f'<li><span class="rank">{escape(c.rank.value)}</span> {text(c.name)} <b>({c.count})</b>{render(c)}</li>'
            for c in kids)
        return f"<ul>{inner}</ul>" if inner else ""

    return f'<div class="bnb-tree"><b>{node.count} results</b>{render(node)}</div>'


def consensus(rows: list[Consensus], predictions: dict[str, list[Prediction]], model: str = BIOCLIP2) -> str:
    if not rows:
        return "<p>No results yet.</p>"
    out = ["<tr><th>rank</th><th>neighbours' majority</th><th>agreement</th>"
           f"<th>{escape(display_name(model))} prediction</th></tr>"]
    for c in rows:
        agree = f"{c.count} of {c.total} ({c.agreement:.0%})" if c.total else "-"
        preds = predictions.get(c.rank.value) or []
        pred = f"{text(preds[0].name)} ({preds[0].score:.0%})" if preds else '<span class="bnb-missing-name">no prediction</span>'
        out.append(f"<tr><td>{escape(c.rank.value)}</td><td>{text(c.name)}</td><td>{agree}</td><td>{pred}</td></tr>")
    return f'<table class="bnb-table bnb-consensus">{"".join(out)}</table>'


def download_link(data: bytes, filename: str, mime: str, label: str) -> str:
    """A link that downloads ``data`` (works in Voilà: no server round trip)."""
    b64 = base64.b64encode(data).decode("ascii")
    size = f"{len(data) / 1024:.0f} KB" if len(data) < 2**20 else f"{len(data) / 2**20:.1f} MB"
    return (f'<a download="{escape(filename, quote=True)}" href="data:{mime};base64,{b64}" '
            f'class="bnb-download">{escape(label)}</a> ({size})')


def copies(frame: pd.DataFrame) -> str:
    """The other copies of a folded image: where each came from (one line each: the panel is narrow)."""
    if frame is None or not len(frame):
        return ""
    items = "".join(
        f"<li>{text(r.get('source_dataset'))} · {text(r.get('publisher'))} · record {text(r.get('source_id'))} · "
        f"{link(r.get('occurrence_url') or r.get('url'), 'open')} · similarity {float(r.get('similarity')):.4f} · "
        f"atlas id {int(r['id'])}</li>"
        for r in frame.to_dict("records"))
    return (f'<div class="bnb-copies-list" style="font-size:12px"><b>{len(frame) + 1} copies of this image</b>, '
            f"folded into one card (the best-ranked is shown above). The others:<ul style='padding-left:16px;"
            f"margin:2px 0'>{items}</ul></div>")


def batch_table(table: pd.DataFrame) -> str:
    """The batch summary: one row per photo."""
    if table is None or not len(table):
        return "<p>No batch yet: upload several photos at once.</p>"
    head = ("<tr><th>#</th><th>photo</th><th>prediction</th><th>neighbours' consensus</th><th>top hit</th>"
            "<th>similarity</th></tr>")
    rows = []
    for i, r in enumerate(table.to_dict("records"), start=1):
        if clean(r.get("error")) and not (pd.notna(r.get("hits")) and r["hits"] > 0):
            rows.append(f"<tr><td>{i}</td><td>{text(r['file'])}</td><td colspan='4' class='bnb-missing-name'>"
                        f"{escape(str(r['error']))}</td></tr>")
            continue
        pred = (f"{text(r.get('prediction'))} ({float(r['prediction_score']):.0%})" if clean(r.get("prediction"))
                else '<span class="bnb-missing-name">no prediction</span>')
        votes = (f"{text(r.get('consensus'))} ({float(r['consensus_agreement']):.0%})"
                 if clean(r.get("consensus")) else MISSING)
        sim = f"{float(r['top_similarity']):.3f}" if pd.notna(r.get("top_similarity")) else "-"
        rows.append(f"<tr><td>{i}</td><td>{text(r['file'])}</td><td>{pred}</td><td>{votes}</td>"
                    f"<td>{text(r.get('top_hit'))}</td><td>{sim}</td></tr>")
    return f'<table class="bnb-table bnb-batch">{head}{"".join(rows)}</table>'


def places_summary(total: int, located: int, shown: int, statuses, filtering: str) -> str:
    """The line above the map: how many hits have a place, and why the others have none."""
    why = "; ".join(f"{n} {escape(str(s))}" for s, n in statuses.most_common() if s != "ok")
    line = f"{located} of {total} results have a place on the map"
    if why:
        line += f" (the others: {why})"
    if filtering:
        line += f". Showing {shown} of {total}: {escape(filtering)}"
    return (f'<div style="font-size:13px">{line}. Points show even where the map tiles cannot load; '
            "click one for its place, date and licence on the right.</div>")


def country_counts(codes, reusable_count: int) -> str:
    """Results per country, and how many may be reused."""
    if not codes:
        return ""
    rows = "".join(f"<tr><td>{escape(c)}</td><td>{n}</td></tr>" for c, n in codes.most_common(12))
    return (f'<table class="bnb-table"><tr><th>country</th><th>results</th></tr>{rows}</table>'
            f'<div style="font-size:12px">{reusable_count} under a reusable licence (CC0, CC BY)</div>')


def place_details(record: dict | None) -> str:
    """The detail panel's place, date, licence, rights holder and citation of a result."""
    if record is None:
        return ""
    if record.get("occurrence_status") != "ok":
        return f'<div class="bnb-missing-name" style="font-size:12px">Where and when: {escape(str(record.get("occurrence_status")))}</div>'
    lat, lon = record.get("latitude"), record.get("longitude")
    where = f"{float(lat):.4f}, {float(lon):.4f}" if lat is not None and lon is not None and pd.notna(lat) and pd.notna(lon) else None
    items = [("place", text(where)), ("country", text(record.get("country_code"))), ("date", text(record.get("event_date"))),
             ("licence", text(record.get("license"))), ("rights holder", text(record.get("rights_holder"))),
             ("cite as", text(record.get("citation")))]
    return '<table class="bnb-table bnb-place">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items) + "</table>"
