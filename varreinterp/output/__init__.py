"""Everything that writes what the tool produces: terminal tables, TSV, JSON, VCF, Parquet,
report folders and HTML reports, all through one atomic-write helper."""
