"""What the widget library leaves out of the page, put in by the page itself: landmarks and names.

ipywidgets draws boxes as plain ``div``s and slider handles without a name. ``PageRoles`` (an
anywidget, drawn as nothing) finds the dashboard around it and sets, and keeps setting as
widgets are redrawn:

* ``role`` on the boxes marked with a landmark class (``bnb-role-main`` -> ``main``), with an
  ``aria-label`` from ``bnb-label-...`` where one is given;
* on every slider handle, the name of its slider (the slider's description), so a screen
  reader says "Search depth, 16" and not "slider, 16";
* on a file input, the name of its upload button.
"""

from __future__ import annotations

import anywidget
import ipywidgets as w

#: The dashboard's landmark roles, as CSS classes on its boxes.
ROLES = ("banner", "main", "complementary", "search", "region")


def landmark(widget: w.Widget, role: str, label: str = "") -> w.Widget:
    """Mark ``widget`` as a landmark ``role`` (one of ``ROLES``) named ``label``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    widget.add_class(f"bnb-role-{role}")
    if label:
        widget.add_class("bnb-label-" + label.replace(" ", "_"))
    return widget


class PageRoles(anywidget.AnyWidget):
    """Landmarks and control names for the dashboard it is drawn in (see the module's doc)."""

    _esm = r"""
    function apply(root) {
      for (const box of root.querySelectorAll("[class*='bnb-role-']")) {
        const cls = [...box.classList];
        const role = cls.find((c) => c.startsWith("bnb-role-"));
        const label = cls.find((c) => c.startsWith("bnb-label-"));
        box.setAttribute("role", role.slice(9));
        if (label) { box.setAttribute("aria-label", label.slice(10).replace(/_/g, " ")); }
      }
      for (const slider of root.querySelectorAll(".widget-slider, .jupyter-widget-slider")) {
        const name = (slider.querySelector(".widget-label") || {}).textContent || "";
        for (const handle of slider.querySelectorAll("[role='slider']")) {
          if (name && handle.getAttribute("aria-label") !== name) { handle.setAttribute("aria-label", name); }
        }
      }
      for (const upload of root.querySelectorAll(".widget-upload, .jupyter-widget-upload")) {
        const input = upload.querySelector("input[type='file']");
        if (input && !input.getAttribute("aria-label")) { input.setAttribute("aria-label", upload.textContent.trim() || "Upload"); }
      }
    }
    function render({ el }) {
      el.style.display = "none";
      let observer = null;
      const start = () => {
        const root = el.closest(".bnb-dashboard");
        if (!root) { window.setTimeout(start, 200); return; }
        apply(root);
        let queued = false;
        observer = new MutationObserver(() => {
          if (queued) { return; }
          queued = true;
          window.requestAnimationFrame(() => { queued = false; apply(root); });
        });
        observer.observe(root, { childList: true, subtree: true });
      };
      start();
      return () => { if (observer) { observer.disconnect(); } };
    }
    export default { render };
    """
