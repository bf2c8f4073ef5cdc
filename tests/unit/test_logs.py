"""The JSON log format of `stateless node start --log-format json`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from node.cli import build_parser
from node.cli._node_cmd import configure_logging
from node.logs import JsonFormatter, log_formatter


def record(
    msg: str, *args: Any, level: int = logging.INFO, exc: bool = False, **extra: Any
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    logger = logging.getLogger("stateless.test")
    return logger.makeRecord(logger.name, level, __file__, 1, msg, args, exc_info, extra=extra or None)


def as_json(rec: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    doc: dict[str, Any] = json.loads(line)
    return doc


def test_core_fields() -> None:
    rec = record("merged %d messages from %s", 3, "peer-a", level=logging.WARNING)
    doc = as_json(rec)
    assert list(doc) == ["ts", "level", "logger", "msg"]
    assert doc["level"] == "WARNING" and doc["logger"] == "stateless.test"
    assert doc["msg"] == "merged 3 messages from peer-a"
    assert doc["ts"].endswith("Z")
    ts = datetime.fromisoformat(doc["ts"].replace("Z", "+00:00"))
    assert abs(ts.timestamp() - rec.created) < 0.001


def test_extra_fields_exception_and_odd_values() -> None:
    doc = as_json(record("line one\nline two", exc=True, peer="p1", count=7, path=Path("/x"), ts="bad"))
    assert doc["msg"] == "line one\nline two"  # escaped: still one line of output
    assert doc["peer"] == "p1" and doc["count"] == 7
    assert doc["path"] == "/x"  # not JSON-encodable: its str()
    assert doc["extra_ts"] == "bad" and doc["ts"].endswith("Z")  # extras never replace core keys
    assert doc["exc"].startswith("Traceback") and "ValueError: boom" in doc["exc"]


def test_stack_info() -> None:
    rec = record("with stack")
    rec.stack_info = "Stack (most recent call last):\n  here"
    assert as_json(rec)["stack"].endswith("here")


def test_formatter_choice() -> None:
    assert isinstance(log_formatter("json"), JsonFormatter)
    text = log_formatter("text").format(record("hello %s", "you"))
    assert text.endswith(" INFO    stateless.test: hello you")
    with pytest.raises(ValueError, match="unknown log format"):
        log_formatter("xml")


def test_node_start_log_format_flag() -> None:
    parse = build_parser().parse_args
    assert parse(["node", "start", "--data-dir", "d"]).log_format == "text"
    args = parse(["node", "start", "--data-dir", "d", "--log-format", "json", "--log-level", "warning"])
    # As in a fresh process: a root logger without handlers (pytest's own are put back after).
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        configure_logging(args.log_level, args.log_format)
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert getattr(handler, "stream", None) is sys.stderr and root.level == logging.WARNING
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved
        root.setLevel(level)
