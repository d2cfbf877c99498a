"""Batch labelling of exports (local and Spark engines) and the report analysts read."""
