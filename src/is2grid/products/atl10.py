"""ATL10 (sea ice freeboard), release 006 and later: the strong beams' ``freeboard_segment`` rows.

Facts checked on real v006 granules (see the project's ATL10 notes): freeboard ``beam_fb_height`` in
``freeboard_segment``, length and surface type in its ``heights`` subgroup, per-beam ``leads`` and
``reference_surface_section`` groups with their own lengths, a 161-bin freeboard histogram per section.
Release 005 and older (``freeboard_beam_segment``) are refused with a named error.

Examples
--------
>>> ATL10.segment_variables["height_segment_length_seg"]
'freeboard_segment/heights/height_segment_length_seg'
>>> ATL10.granule_identity("s3://b/ATLAS/processed_ATL10-02_20190915000000_12340401_006_01.h5")
'ATL10-02_20190915000000_12340401'
>>> {role: name for role, (name, _) in ATL10.statistics().items()}
{'count': 'n_segments', 'mean_length': 'mean_seg_length', 'mean': 'mean_fb', 'std': 'std_fb'}
"""

from __future__ import annotations

from is2grid.products.base import Product

__all__ = ["ATL10"]

ATL10 = Product(
    name="ATL10",
    title="ICESat-2 ATL10 sea ice freeboard segments",
    segment_group="freeboard_segment",
    segment_subgroups=("heights", "geophysical"),
    beam_groups={"freeboard_segment": "segment", "leads": "lead", "reference_surface_section": "section"},
    fixed_dims={"beam_fb_hist_refsurf": "hist_bin", "ds_si_hist_bins": "hist_bin"},
    default_variables=(
        "beam_fb_height",
        "beam_fb_unc",
        "beam_fb_quality_flag",
        "beam_fb_confidence",
        "height_segment_id",
        "seg_dist_x",
        "height_segment_length_seg",
        "height_segment_type",
        "height_segment_ssh_flag",
    ),
    variable="beam_fb_height",
    stems={"beam_fb_height": "fb", "beam_fb_unc": "fb_unc"},
    described={
        "beam_fb_height": {
            "long_name": "sea ice freeboard",
            "standard_name": "sea_ice_freeboard",
            "count": "number of freeboard segments in the cell",
        },
        "beam_fb_unc": {"long_name": "sea ice freeboard uncertainty"},
    },
    quality_flag="beam_fb_quality_flag",
    schema_file="atl10_schema.json",
    legacy_groups={"freeboard_beam_segment": "release 005 or older"},
    releases="006 and later",
)
