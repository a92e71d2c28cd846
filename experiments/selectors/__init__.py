"""Reads: assignments for the storefront and other apps, metric sums for analysis, screen data."""
