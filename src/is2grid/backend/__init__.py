"""The xarray backends: the entry points, the data store that turns a granule into Variables, the lazy arrays."""
