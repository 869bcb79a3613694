"""File formats: datasources (readers) and datasinks (writers) behind ``read_*``/``write_*``.

Modules are imported on demand (``ember.data.read_parquet`` imports only the Parquet
reader), so this package imports nothing itself.
"""
