"""The public JSON Schemas, shipped inside the package as `reconciler.schemas`."""
