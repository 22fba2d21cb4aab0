"""Stateful Bytewax steps: the per-loan state, and the history that seeds it from the store."""
