"""The worker's log output: ``--verbosity`` mapped onto the package logger."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("django_taskqueue")

LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def configure_logging(verbosity: int) -> None:
    """Map --verbosity to the package logger; log to stderr if nothing else does."""
    logger.setLevel(LEVELS.get(verbosity, logging.INFO))
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s")
        )
        logger.addHandler(handler)
