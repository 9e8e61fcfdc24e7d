"""Entries that failed the reproduction gate (see ``../DROPPED.md``): kept for inspection, never scored."""
