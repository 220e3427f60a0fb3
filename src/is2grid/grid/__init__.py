"""Gridding: requests, grids, the reduction to per-cell sums, labelled results, regions and time series."""
