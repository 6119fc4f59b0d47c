"""The installed version: for `--version`, every journal event's actor and saved plans. Its own
module because reading the package metadata costs more than most commands' own work."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("backfill-reconciler")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0+unknown"
