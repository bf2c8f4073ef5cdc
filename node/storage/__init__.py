"""Durable storage: LMDB environment and the group-commit writer."""

from node.storage._check import check_consistency as check_consistency
from node.storage._lmdb import LmdbStore, TxnKV
from node.storage._writer import Writer

__all__ = ["LmdbStore", "TxnKV", "Writer"]
