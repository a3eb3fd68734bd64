"""Stage 1, ingest: read data files record by record (`records`, `formats`), store the good records and
report the rest (`loader`), link accounts to people, and mine the aspects people write about (`aspects`)."""
