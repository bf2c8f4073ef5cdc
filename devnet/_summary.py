"""What a devnet did, summed from its nodes' Prometheus metrics: printed when `devnet up` or `down` stops it.

    totals = scrape_all([node.metrics_url for node in nodes])   # blocking; before the nodes stop
    print("\n".join(summary_lines(totals, nodes=len(nodes))))

Counters only ever grow during a node's life, so the sum over nodes is what the devnet did since its nodes
(last) started. A node that does not answer is left out and counted.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

SCRAPE_TIMEOUT: Final = 2.0
#: Rejection codes shown by name (the rest are summed under "other").
TOP_CODES: Final = 3


@dataclass
class Totals:
    """Metric samples summed over nodes: {sample name: {labels (sorted pairs): value}}."""

    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    answered: int = 0
    failed: list[str] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        """Add one node's /metrics exposition (raises ValueError if it does not parse)."""
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                by_labels = self.samples.setdefault(sample.name, {})
                key = tuple(sorted(sample.labels.items()))
                by_labels[key] = by_labels.get(key, 0.0) + float(sample.value)
        self.answered += 1

    def total(self, name: str) -> int:
        """A counter or gauge summed over nodes and labels (0 if no node has it)."""
        return round(sum(self.samples.get(name, {}).values()))

    def by(self, name: str, label: str) -> dict[str, int]:
        """A sample summed over nodes, per value of one label."""
        out: dict[str, int] = {}
        for labels, value in self.samples.get(name, {}).items():
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0) + round(value)
        return out


def scrape(url: str, *, timeout: float = SCRAPE_TIMEOUT) -> str:
    """GET a /metrics page (blocking); OSError or ValueError if it cannot be had."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def scrape_all(urls: Iterable[str], *, timeout: float = SCRAPE_TIMEOUT) -> Totals:
    """Sum the metrics of every URL; those that fail are listed in `failed`, never raised."""
    totals = Totals()
    for url in urls:
        try:
            totals.add_text(scrape(url, timeout=timeout))
        except (OSError, ValueError, urllib.error.URLError) as e:
            totals.failed.append(f"{url}: {getattr(e, 'reason', e)}")
    return totals


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _parts(counts: Mapping[str, int], *, top: int | None = None) -> str:
    items = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    if top is not None and len(items) > top:
        items = [*items[:top], ("other", sum(v for _k, v in items[top:]))]
    return ", ".join(f"{k} {v:,}" for k, v in items)


def _detail(parts: str) -> str:
    return f" ({parts})" if parts else ""


def summary_lines(totals: Totals, *, nodes: int) -> list[str]:
    """The devnet summary: one line per subject, from metrics summed over the nodes that answered."""
    if not totals.answered:
        return [f"no metrics: none of {nodes} node(s) answered on /metrics"]
    t = totals
    merged = t.by("stateless_messages_merged_total", "origin")
    rejected = t.by("stateless_messages_rejected_total", "code")
    grpc_calls = t.by("stateless_grpc_requests_total", "code")
    grpc_errors = sum(v for code, v in grpc_calls.items() if code != "OK")
    sessions, failures = t.total("stateless_sync_sessions_total"), t.total("stateless_sync_failures_total")
    lines = [
        f"totals from /metrics of {t.answered} of {nodes} node(s) (summed over nodes):",
        f"  messages merged    {sum(merged.values()):,}"
        + (f" ({_parts(merged)})" if any(merged.values()) else ""),
        f"  messages rejected  {sum(rejected.values()):,}"
        + (f" ({_parts(rejected, top=TOP_CODES)})" if rejected else ""),
        f"  gossip             bundles in {t.total('stateless_gossip_bundles_in_total'):,}, "
        f"out {t.total('stateless_gossip_bundles_out_total'):,}; "
        f"invalid messages {t.total('stateless_gossip_messages_invalid_total'):,}, "
        f"rate limited {t.total('stateless_gossip_rate_limited_total'):,}",
        f"  sync               sessions {sessions:,} ({failures:,} failed), "
        f"fetched {t.total('stateless_sync_messages_fetched_total'):,}, "
        f"pushed {t.total('stateless_sync_messages_pushed_total'):,}",
        f"  peers              bans {t.total('stateless_peer_bans_total'):,}, "
        f"evictions {t.total('stateless_peer_evictions_total'):,}, "
        f"penalties {t.total('stateless_peer_penalties_total'):,}",
        f"  blobs              fetched {_bytes(t.total('stateless_blob_bytes_fetched_total'))}, "
        f"served {_bytes(t.total('stateless_blob_bytes_served_total'))}",
        f"  gRPC               requests {sum(grpc_calls.values()):,} ({grpc_errors:,} not OK)",
    ]
    lines += [f"  ! no metrics from {failure}" for failure in t.failed]
    return lines


def metrics_urls(urls: Sequence[str | None]) -> list[str]:
    """The URLs that exist (nodes started without metrics, and adversaries, have none)."""
    return [url for url in urls if url]
