"""Logging to the profile's log file (rotated), and optionally to standard error."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


def setup_logging(log_path: Path | None, *, stderr: bool, level: int = logging.INFO) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if log_path is not None:
        file_handler = logging.handlers.RotatingFileHandler(
            log_path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
        file_handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(file_handler)
    if stderr:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(stream)
    # libp2p is chatty at INFO (every dial, every identify); keep its warnings.
    logging.getLogger("libp2p").setLevel(max(level, logging.WARNING))
    # ... and logs every refused or unreachable TCP dial as an ERROR: with contacts offline that
    # is a line per redial. Kith's own dialer reports unreachable contacts (once per backoff step).
    logging.getLogger("libp2p.transport.tcp.tcp").setLevel(logging.CRITICAL)
