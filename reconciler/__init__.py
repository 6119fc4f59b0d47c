"""backfill-reconciler: declarative, reviewable, exactly-once data backfills."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("backfill-reconciler")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
