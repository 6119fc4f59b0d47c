"""backfill-reconciler: declarative, reviewable, exactly-once data backfills."""
