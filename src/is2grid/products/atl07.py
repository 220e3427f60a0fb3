"""ATL07 (sea ice and sea surface heights): the strong beams' ``sea_ice_segments`` rows.

Segments of 150 signal photons (strong beams), their height above the mean sea surface after the
geophysical corrections (``heights/height_segment_height``), length, surface type (sea ice, leads, cloud)
and quality. The schema is that of real release-003 granules; release 005 and 006 keep these paths for
every variable the engine reads by default (names the file lacks are left out with a warning).

Examples
--------
>>> ATL07.segment_variables["height_segment_height"]
'sea_ice_segments/heights/height_segment_height'
>>> {role: name for role, (name, _) in ATL07.statistics().items()}
{'count': 'n_segments', 'mean_length': 'mean_seg_length', 'mean': 'mean_height', 'std': 'std_height'}
"""

from __future__ import annotations

from is2grid.products.base import Product

__all__ = ["ATL07"]

ATL07 = Product(
    name="ATL07",
    title="ICESat-2 ATL07 sea ice height segments",
    segment_group="sea_ice_segments",
    segment_subgroups=("heights", "geophysical", "geolocation", "stats"),
    beam_groups={"sea_ice_segments": "segment"},
    fixed_dims={"hist_photon_heights": "hist_bin", "ds_si_hist_bins": "hist_bin"},
    default_variables=(
        "height_segment_height",
        "height_segment_confidence",
        "height_segment_quality",
        "height_segment_fit_quality_flag",
        "height_segment_id",
        "seg_dist_x",
        "height_segment_length_seg",
        "height_segment_type",
        "height_segment_ssh_flag",
        "height_segment_rms",
    ),
    variable="height_segment_height",
    stems={"height_segment_height": "height"},
    described={
        "height_segment_height": {
            "long_name": "sea ice surface height above the mean sea surface",
            "count": "number of height segments in the cell",
        }
    },
    quality_flag="height_segment_fit_quality_flag",
    schema_file="atl07_schema.json",
    releases="003 to 006",
)
