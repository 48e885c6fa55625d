"""Names from the data, cleaned the same way everywhere: a blank is missing, a binomial is
genus and epithet.

Community data writes a missing rank as NULL, NaN, ``""`` or whitespace; each of those is
``None`` here, and only here.
"""

from __future__ import annotations


def clean(value: object) -> str | None:
    """A value as stripped text, or None when it is missing (None, NaN, pandas NA, blank)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    try:
        if value != value:  # NaN, of any float type
            return None
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    return text or None


def scientific_name(genus: object, epithet: object) -> str | None:
    """``"Vulpes vulpes"`` from a genus and a species epithet; the genus alone when the epithet
    is missing; None without a genus."""
    g, e = clean(genus), clean(epithet)
    if g is None:
        return None
    return f"{g} {e}" if e else g
