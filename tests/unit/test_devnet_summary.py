"""The devnet summary: node metrics summed and told in a few lines (devnet/_summary.py)."""

from __future__ import annotations

import pytest

from devnet._summary import Totals, scrape_all, summary_lines

NODE_A = """\
# TYPE stateless_messages_merged counter
stateless_messages_merged_total{origin="local"} 10.0
stateless_messages_merged_total{origin="gossip"} 0.0
# TYPE stateless_messages_rejected counter
stateless_messages_rejected_total{code="bad_request.validation_failure.signature"} 7.0
# TYPE stateless_peer_bans counter
stateless_peer_bans_total 1.0
# TYPE stateless_blob_bytes_fetched counter
stateless_blob_bytes_fetched_total 3145728.0
# TYPE stateless_grpc_requests counter
stateless_grpc_requests_total{method="SubmitMessage",code="OK"} 10.0
stateless_grpc_requests_total{method="GetInfo",code="UNAVAILABLE"} 1.0
"""
NODE_B = """\
# TYPE stateless_messages_merged counter
stateless_messages_merged_total{origin="gossip"} 10.0
# TYPE stateless_messages_rejected counter
stateless_messages_rejected_total{code="bad_request.validation_failure.signature"} 5.0
stateless_messages_rejected_total{code="bad_request.duplicate"} 2.0
stateless_messages_rejected_total{code="bad_request.no_storage"} 1.0
stateless_messages_rejected_total{code="bad_request.unknown_fid"} 1.0
# TYPE stateless_peer_bans counter
stateless_peer_bans_total 2.0
"""


def test_totals_are_summed_over_nodes_and_labels() -> None:
    totals = Totals()
    totals.add_text(NODE_A)
    totals.add_text(NODE_B)
    assert totals.answered == 2
    assert totals.by("stateless_messages_merged_total", "origin") == {"local": 10, "gossip": 10}
    assert totals.total("stateless_peer_bans_total") == 3
    assert totals.total("stateless_no_such_metric") == 0
    lines = summary_lines(totals, nodes=3)
    assert lines[0] == "totals from /metrics of 2 of 3 node(s) (summed over nodes):"
    text = "\n".join(lines)
    assert "messages merged    20 (gossip 10, local 10)" in text
    # The top codes by count, the rest summed.
    assert (
        "messages rejected  16 (bad_request.validation_failure.signature 12, bad_request.duplicate 2, "
        "bad_request.no_storage 1, other 1)"
    ) in text
    assert "bans 3," in text and "fetched 3.0 MiB" in text and "requests 11 (1 not OK)" in text


def test_a_page_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ValueError):
        Totals().add_text("stateless_thing{unclosed 1\n")


def test_nodes_that_do_not_answer_are_listed_not_raised() -> None:
    totals = scrape_all(["http://127.0.0.1:1/metrics"], timeout=1.0)
    assert totals.answered == 0 and len(totals.failed) == 1
    assert summary_lines(totals, nodes=1) == ["no metrics: none of 1 node(s) answered on /metrics"]
