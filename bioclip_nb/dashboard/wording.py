"""Words for people: labels of scopes and fetch outcomes, and sentences about what happened.

The core returns statuses and counts; this is the one place that turns them into the
dashboard's language.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..images.fetch import FetchResult, FetchStatus, failure_counts
from ..layout import Scope

SCOPE_LABELS = {
    Scope.ALL: "All records",
    Scope.URL: "Records with an image URL",
    Scope.INAT: "iNaturalist photos",
    Scope.TRAINING: "In BioCLIP 2's training data",
}

#: Short captions for a gallery card whose image did not arrive.
WHY = {
    FetchStatus.NO_URL: "No image for this record",
    FetchStatus.NOT_FOUND: "Image no longer online",
    FetchStatus.RATE_LIMITED: "Host asked us to slow down",
    FetchStatus.TIMEOUT: "Host too slow",
    FetchStatus.TOO_LARGE: "Image too large",
    FetchStatus.NOT_IMAGE: "Not an image",
    FetchStatus.BLOCKED: "Address not allowed",
    FetchStatus.BUDGET_EXCEEDED: "Hourly download budget used",
    FetchStatus.ERROR: "Image unavailable",
}

#: Singular and plural of each failure, for the status line.
_COUNTED = {
    FetchStatus.TIMEOUT: ("timeout", "timeouts"), FetchStatus.NOT_FOUND: ("not found", "not found"),
    FetchStatus.NO_URL: ("without URL", "without URL"), FetchStatus.RATE_LIMITED: ("rate-limited", "rate-limited"),
    FetchStatus.TOO_LARGE: ("too large", "too large"), FetchStatus.NOT_IMAGE: ("not an image", "not images"),
    FetchStatus.BLOCKED: ("blocked", "blocked"),
    FetchStatus.BUDGET_EXCEEDED: ("over the hourly budget", "over the hourly budget"),
    FetchStatus.ERROR: ("error", "errors"),
}


def describe_failures(results: Iterable[FetchResult]) -> str:
    """'3 of 20 images unavailable (2 timeouts, 1 not found)', or '' when all arrived."""
    total, counts = failure_counts(results)
    if not counts:
        return ""
    parts = [f"{n} {_COUNTED[s][0] if n == 1 else _COUNTED[s][1]}" for s, n in counts.most_common()]
    return f"{sum(counts.values())} of {total} images unavailable ({', '.join(parts)})"


#: Added to the status line when the bioclip-nb server does not answer.
SERVER_DOWN = (". Your query and settings are kept: press Search again once the server is back "
               "(bioclip-nb status tells whether it runs).")
