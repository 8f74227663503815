"""Data helpers (filled in by their owner)."""
__all__ = []
