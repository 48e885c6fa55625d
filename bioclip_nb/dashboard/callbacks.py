"""The one boundary every UI callback passes: failures become the status line, never a traceback."""

from __future__ import annotations

import functools
import logging
import traceback

from ..errors import ServerUnavailableError
from .state import EXPECTED_ERRORS, OUR_ERRORS, Level, Status
from .wording import SERVER_DOWN

log = logging.getLogger("bioclip_nb.dashboard")


def guarded(method):
    """Run a UI callback; turn any failure into the status line, never a traceback on the page.

    For methods of the dashboard and of its tabs: both have ``session``, ``render_status()``
    and ``set_busy()``."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except EXPECTED_ERRORS as exc:
            if not isinstance(exc, OUR_ERRORS):   # a bare ValueError/OSError may be a bug: keep its traceback
                log.warning("dashboard callback %s: %s\n%s", method.__name__, exc, traceback.format_exc())
            self.session.status = Status(str(exc) + (SERVER_DOWN if isinstance(exc, ServerUnavailableError) else ""),
                                         Level.ERROR)
        except Exception as exc:  # the UI boundary: log the details, tell the user in words
            log.error("dashboard callback %s failed:\n%s", method.__name__, traceback.format_exc())
            self.session.status = Status(f"Something went wrong ({type(exc).__name__}: {exc}). "
                                         "The dashboard is still usable; try again.", Level.ERROR)
        finally:
            self.render_status()
            self.set_busy(False)
    return run
