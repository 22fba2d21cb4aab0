"""Bytewax sources and sinks, one module per connector; each only moves data."""
