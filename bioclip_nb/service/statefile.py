"""The running server's record: where it listens, its token, its process, its atlas.

``$BIOCLIP_NB_HOME/server.json`` is written by ``bioclip-nb serve`` with mode 0600 (only its
owner can read the token) and removed when the server stops. A record whose process is gone
is stale and is removed by whoever finds it.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "server.json"


@dataclass(frozen=True)
class ServerRecord:
    """What a client needs to reach a server, and what ``status`` reports."""

    url: str
    token: str
    pid: int
    atlas: str
    model: str
    started: float
    idle_minutes: float
    log: str | None = None

    def alive(self) -> bool:
        """Whether the server's process still exists."""
        return pid_alive(self.pid)


def new_token() -> str:
    """A random bearer token (256 bits)."""
    return secrets.token_urlsafe(32)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable and writable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_record(home: Path, record: ServerRecord) -> Path:
    """Save the record under ``home`` (0600)."""
    path = Path(home) / STATE_FILE
    write_private(path, json.dumps(asdict(record), indent=1))
    return path


def read_record(home: Path, clean_stale: bool = True) -> ServerRecord | None:
    """The record of the server started from ``home``, or None. A record whose process has
    gone (a server killed with SIGKILL) is removed when ``clean_stale``."""
    path = Path(home) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = ServerRecord(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        if clean_stale:
            path.unlink(missing_ok=True)      # unreadable or from another version: nothing can use it
        return None
    if not record.alive():
        if clean_stale:
            path.unlink(missing_ok=True)
        return None
    return record


def remove_record(home: Path, pid: int | None = None) -> None:
    """Remove the record (only if it is ``pid``'s, when given)."""
    path = Path(home) / STATE_FILE
    if pid is not None:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") != pid:
                return
        except (OSError, ValueError):
            pass
    path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie."""
    try:
        import psutil
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - NoSuchProcess, AccessDenied, a bad pid: not ours to use
        return False
