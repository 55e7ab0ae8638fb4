"""varreinterp: clinical variant reinterpretation against versioned classification snapshots."""

__version__ = "0.1.0"
