"""Durable storage: LMDB environment and the group-commit writer."""

from node.storage._lmdb import LmdbStore, TxnKV
from node.storage._writer import Writer

__all__ = ["LmdbStore", "TxnKV", "Writer"]
