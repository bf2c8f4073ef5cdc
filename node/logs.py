"""Log formats of a node: the human one, and JSON lines for log collectors (`--log-format json`)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

#: The human format (`--log-format text`, the default).
TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_FORMATS: Final = ("text", "json")

# Everything logging itself puts on a record; whatever else is there came from `extra=`.
_RECORD_FIELDS: Final = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName"}
)
#: Keys every JSON line has; `extra` fields of the same name are prefixed with "extra_".
_CORE_KEYS: Final = ("ts", "level", "logger", "msg", "exc", "stack")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (ISO 8601, UTC, milliseconds), level, logger, msg, then `exc`
    (the formatted exception) and `stack` if present, then the record's `extra` fields.

    Values JSON cannot encode are written as their `str()`; the output never spans lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            # Cached on the record as logging.Formatter does, so other handlers reuse the text.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                out[f"extra_{key}" if key in _CORE_KEYS else key] = value
        return json.dumps(out, default=str)


def log_formatter(kind: str) -> logging.Formatter:
    """The formatter for a `--log-format` value ("text" or "json")."""
    if kind == "json":
        return JsonFormatter()
    if kind == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {kind!r}; use one of {', '.join(LOG_FORMATS)}")


__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "log_formatter"]
