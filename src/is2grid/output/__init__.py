"""Writing results: the resumable Zarr store and its chunk writer."""
