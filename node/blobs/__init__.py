"""The node's blob side: the durable content-addressed block store (pins, GC, quota)."""

from node.blobs._fetch import BlobFetcher, FetchProgress, IncrementalProviderSource, ProviderSource
from node.blobs._providers import BlockExchange, ProviderFinder, open_block_exchange
from node.blobs._store import BlobInfo, BlobStore, GcResult, StoreUsage

__all__ = [
    "BlobFetcher",
    "BlobInfo",
    "BlobStore",
    "BlockExchange",
    "FetchProgress",
    "GcResult",
    "IncrementalProviderSource",
    "ProviderFinder",
    "ProviderSource",
    "StoreUsage",
    "open_block_exchange",
]
