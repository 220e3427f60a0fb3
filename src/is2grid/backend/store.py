"""The data store of ATL10 and ATL07 granules: granule structure -> lazily read xarray Variables.

Product rules (beams, groups, names, schema) come from the :mod:`is2grid.products` the engine
names; reading goes through :class:`is2grid.io.reader.GranuleReader`. Times in CF "seconds since
2018-01-01" decode to UTC in the decode threads, exactly as xarray's CF decoding would (see "Time" in
the design decisions); with
``decode_times=False`` they stay the stored seconds with their ``units``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import os
import warnings
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends.common import AbstractDataStore
from xarray.core.utils import FrozenDict

from is2grid import _turns
from is2grid._turns import fetching
from is2grid.backend.arrays import RaggedArray, RepeatedLabelArray
from is2grid.errors import (
    CorruptGranuleError,
    Is2gridWarning,
    NotATL07Error,
    NotATL10Error,
    UnsupportedVersionError,
    WrongProductError,
)
from is2grid.io import decode
from is2grid.io.credentials import Credentials
from is2grid.io.options import FetchOptions
from is2grid.io.reader import GranuleReader, Piece, Request, as_text, concurrently
from is2grid.io.sources import describe
from is2grid.products import ATL10, PRODUCTS, Product, icesat2

ROOT_SCALARS = icesat2.ROOT_SCALARS
#: whether opening a transition granule with beams="strong"/"weak" warns (it gives no segments). Gridding
#: many granules turns it off for its own opens; a ContextVar, so threads (a Dask worker's) do not share it,
#: where warnings.catch_warnings changes the filters of the whole process
WARN_TRANSITION: contextvars.ContextVar[bool] = contextvars.ContextVar("is2grid_warn_transition", default=True)


@dataclasses.dataclass(frozen=True)
class FetchWithOpen:
    """What an open in a run in flight will read: its chunks can go in the same round trip as orbit_info's values.

    Which beams are strong is orbit_info's ``sc_orient``; a granule whose structure comes from a DMR++ sidecar
    also names each beam's type in the beam group's ``atlas_beam_type`` attribute, at no cost. With that guess
    the chunks of the beams and variables asked for are fetched with orbit_info's values instead of one round
    trip after them, and ``sc_orient`` still decides: chunks of beams it does not choose are dropped unread.
    """

    beams: Any = "strong"
    variables: Any = None
    drop_variables: Any = None

    def plan(self, granule: Granule) -> tuple[list[str] | None, list[Request], int]:
        """(the beams guessed, the whole datasets to fetch, their decoded bytes); (None, [], 0) without a guess."""
        guess = granule.guess_beams(self.beams)
        if not guess:
            return None, [], 0
        try:
            names = {*_select_names(granule.product, self.variables, self.drop_variables), "latitude"}
        except ValueError:  # said by the store, as for any open
            return None, [], 0
        rows = granule.segment_rows_of(guess, names)
        found = [(path, layout) for beam in guess for path, layout in rows[beam].values()]
        nbytes = sum(layout.n_elements * layout.dtype.itemsize for _, layout in found)
        return guess, [(path, None, None) for path, _ in found], nbytes


class Granule:
    """What is known about a granule after reading its structure and orbit_info (no segment data)."""

    def __init__(
        self,
        target: Any,
        credentials: Credentials | None = None,
        options: FetchOptions | None = None,
        product: Product = ATL10,
        ahead: FetchWithOpen | None = None,
    ):
        self.product = product
        if isinstance(target, str | os.PathLike):
            target = os.fspath(target)  # checked by is2grid.backend.opening.open_granule before it gets here
        self.url = describe(target)
        self.name = self.url.rstrip("/").rsplit("/", 1)[-1]
        self.reader = GranuleReader(target, credentials, options)
        self._groups: dict[str, tuple[dict[str, Any], set[str]]] = {}
        self._links: dict[str, set[str]] = {}
        root_groups = self.reader.links("/")
        self.beams = [b for b in icesat2.BEAMS if b in root_groups]
        missing = {"orbit_info", "ancillary_data"} - root_groups
        if missing or not self.beams:
            raise self._wrong(
                f"{self.url}: not an {product.name} granule (no {sorted(missing) or 'beam groups gt1l..gt3r'} at "
                f"the root; found {sorted(root_groups)}). Open {product.name} granules only ({product.name}-01_* "
                f"Arctic, {product.name}-02_* Antarctic)."
            )
        scalars = [(path, None, None) for path in ROOT_SCALARS.values()]
        guess: list[str] | None = None
        if ahead is not None and self.reader.described and _turns.TICKET.get() is not None:
            # a sidecar gives the tree at no cost, so the chunks of the beams it names can go with the scalars
            self._links.update({"links:" + beam: self.reader.links(beam) for beam in self.beams})
            self._check_product()
            try:
                guess, requests, nbytes = ahead.plan(self)
            except Exception:  # the store reads the same and says what is wrong; the scalars come first
                guess, requests, nbytes = None, [], 0
            values = _outcome(self._read_with, scalars, requests, nbytes)
        else:
            # the next level of the tree at once: every beam's members, and the orbit/ancillary scalars read whole
            *beam_links, values = concurrently(
                *(functools.partial(self.reader.links, beam) for beam in self.beams),
                functools.partial(_outcome, self.reader.read, scalars),
                parallel=self.reader.remote,
            )
            self._links.update({"links:" + beam: names for beam, names in zip(self.beams, beam_links, strict=True)})
            self._check_product()  # what kind of file this is says more than a missing scalar would
        if isinstance(values, Exception):
            raise values
        values = [  # strings nccopy stored as variable-length ones
            self.reader.vlen_text(v) if np.asarray(v).dtype == np.dtype("V16") else v for v in values
        ]
        raw = {name: self._one_value(name, value) for name, value in zip(ROOT_SCALARS, values, strict=True)}
        self.sc_orient = int(raw["sc_orient"])
        self.release = as_text(raw["release"])
        self.attrs = {
            "granule": self.name.removeprefix("processed_") if self.name.startswith("processed_") else self.name,
            "source_file": self.name,
            "hemisphere": product.hemisphere_from_name(self.name) or self._hemisphere_from_metadata(),
            "rgt": int(raw["rgt"]),
            "cycle": int(raw["cycle_number"]),
            "orbit_number": int(raw["orbit_number"]),
            "sc_orient": self.sc_orient,
            "sc_orient_meaning": icesat2.ORIENTATIONS.get(self.sc_orient, "unknown"),
            "product": product.name,
            "product_version": self.release,
            "product_revision": as_text(raw["revision"]),
        }
        if guess is not None and ahead is not None:
            chosen = icesat2.beams_for(self.sc_orient, ahead.beams)[0]
            if set(guess) & set(self.beams) != set(chosen) & set(self.beams):
                self.reader.drop_ahead()  # the beam groups' attributes and sc_orient disagree: sc_orient decides

    def _read_with(self, scalars: list[Request], requests: list[Request], nbytes: int) -> list[Any]:
        """The scalars; in a run in flight, with the compressed chunks of ``requests`` fetched in the same requests."""
        with fetching(nbytes) as ready:
            return self.reader.read(scalars, ahead=requests if ready else ())

    def guess_beams(self, beams) -> list[str] | None:
        """The beams ``beams=`` names, before orbit_info is read; None when that needs ``sc_orient``, unknown yet.

        'all' and lists name the same beams in every orientation; 'strong' and 'weak' are guessed from the beam
        groups' ``atlas_beam_type`` where the structure gives it at no cost (a DMR++ sidecar).
        """
        if not (isinstance(beams, str) and beams in ("strong", "weak")):
            try:
                return icesat2.beams_for(0, beams)[0]
            except ValueError:  # said by the store, as for any open
                return None
        types = {b: self.reader.group_attributes(b).get("atlas_beam_type", "").strip().lower() for b in self.beams}
        if not types or not all(t in ("strong", "weak") for t in types.values()):
            return None
        return [b for b in self.beams if types[b] == beams]

    def _one_value(self, name: str, value: Any) -> Any:
        """The single value of a root scalar dataset (``orbit_info/rgt``...); empty or unreadable is damage."""
        flat = np.asarray(value).ravel()
        if flat.size == 0:
            raise CorruptGranuleError(
                f"{self.url}: {ROOT_SCALARS[name]} holds no value (0 elements) where every {self.product.name} granule "
                "has one. "
                "The granule is damaged or was edited: download it again."
            )
        if flat.dtype.kind in "iuf" and name in ("sc_orient", "rgt", "cycle_number", "orbit_number"):
            if not np.isfinite(flat[0]) or flat[0] != np.round(flat[0]):
                raise CorruptGranuleError(f"{self.url}: {ROOT_SCALARS[name]} is {flat[0]!r}, not a whole number.")
        return flat[0] if flat.dtype.kind not in "SUO" else flat

    def _hemisphere_from_metadata(self) -> str:
        """For a renamed granule: ``ancillary_data/start_region`` (1 Arctic, 2 Antarctic for ATL07/ATL10)."""
        path = "ancillary_data/start_region"
        if self.reader.metadata([path], missing_ok=True)[path] is None:
            return "unknown"
        region = int(np.asarray(self.reader.read([(path, None, None)])[0]).ravel()[0])
        return icesat2.REGION_HEMISPHERES.get(region, "unknown")

    def _wrong(self, message: str) -> WrongProductError:
        kind = {"ATL10": NotATL10Error, "ATL07": NotATL07Error}.get(self.product.name, WrongProductError)
        return kind(message)

    def _check_product(self) -> None:
        product = self.product
        kinds: set[str] = set()
        for beam in self.beams:
            kinds |= self.links(beam)
        legacy = sorted(kinds & set(product.legacy_groups))
        if legacy:
            release = as_text(self.reader.read([("ancillary_data/release", None, None)])[0])
            raise UnsupportedVersionError(
                f"{self.url}: {product.name} release {release} layout ({legacy[0]}/, "
                f"{product.legacy_groups[legacy[0]]}); is2grid reads release {product.releases}. Download the "
                "current release of this granule from NSIDC."
            )
        if not kinds & set(product.beam_groups):
            other = next((p for p in PRODUCTS.values() if p.segment_group in kinds), None)
            found = f"{other.segment_group} (an {other.name} granule)" if other else sorted(kinds)
            fix = f": open it with engine={other.name.lower()!r}" if other else f". Open {product.name} granules only"
            raise self._wrong(
                f"{self.url}: beam groups hold {found}, not {product.name}'s {'/'.join(product.beam_groups)}{fix}."
            )

    def listing(self, group: str) -> tuple[dict[str, Any], set[str]]:
        """Datasets with metadata and subgroups of a group (reads every member's header)."""
        if group not in self._groups:
            self._groups[group] = self.reader.listing(group)
        return self._groups[group]

    def links(self, group: str) -> set[str]:
        key = "links:" + group
        if key not in self._links:
            self._links[key] = self.reader.links(group)
        return self._links[key]

    def segment_paths(self, beam: str) -> dict[str, str]:
        """Flat name -> path of every per-segment dataset of one beam (empty if it has no segment group)."""
        product = self.product
        if product.segment_group not in self.links(beam):
            return {}
        found: dict[str, str] = {}
        for sub in ("", *product.segment_subgroups):
            group = "/".join(filter(None, (beam, product.segment_group, sub)))
            if sub and sub not in self.links("/".join((beam, product.segment_group))):
                continue
            for name in sorted(self.links(group) - set(product.segment_subgroups)):
                found.setdefault(name, f"{group}/{name}")
        return found

    def segment_rows_of(
        self, beams: list[str], names, time_probe: bool = False
    ) -> dict[str, dict[str, tuple[str, Any]]]:
        """Like :meth:`segment_rows` for several beams and known names, with every header read at once.

        Paths come from the product schema, so no group listing is needed. ``time_probe``: the chunks
        of the first and the last time, which xarray reads to check that times decode, are fetched
        with the chunk indexes (when reads cost round trips).
        """
        table = self.product.segment_variables
        paths = {
            (beam, name): f"{beam}/{table[name]}"
            for beam in beams
            if beam in self.beams and self.product.segment_group in self.links(beam)
            for name in names
        }
        times = [p for (_, name), p in paths.items() if name == icesat2.TIME] if time_probe else []
        keep: dict[str, tuple[int, ...]] = {}
        if times:  # the first row of the first beam, the last of the last (one beam: both)
            keep[times[0]] = (0,)
            keep[times[-1]] = (*keep.get(times[-1], ()), -1)
        metas = self.reader.metadata(list(paths.values()), missing_ok=True, index=True, keep=keep) if paths else {}
        rows: dict[str, dict[str, tuple[str, Any]]] = {beam: {} for beam in beams}
        for (beam, name), path in paths.items():
            if metas[path] is not None:
                rows[beam][name] = (path, metas[path])
        return rows

    def segment_rows(self, beam: str, names=None) -> dict[str, tuple[str, Any]]:
        """Flat name -> (path, Layout) of the per-segment datasets of one beam (all, or ``names``)."""
        paths = self.segment_paths(beam)
        wanted = {n: p for n, p in paths.items() if names is None or n in names}
        metas = self.reader.metadata(list(wanted.values())) if wanted else {}
        return {n: (p, metas[p]) for n, p in wanted.items()}


def _outcome(call, *args):
    """The result of ``call(*args)``, or the exception it raised (to be raised later, in order)."""
    try:
        return call(*args)
    except Exception as err:
        return err


def _engine_decodes_times(decode_times) -> bool:
    """``decode_times=True`` (the default): the engine decodes; a coder goes to xarray; False keeps seconds."""
    return decode_times is True


def _ragged_variable(
    reader, dims, pieces, dtype, attrs, mask, trailing=(), siblings=None, decode_times=False
) -> xr.Variable:
    attrs = dict(attrs)
    encoding: dict[str, Any] = {}
    stored = np.dtype(dtype)
    decoded, fill, convert = stored, attrs.get("_FillValue"), None
    if mask and fill is not None and stored.kind in "iuf" and not {"scale_factor", "add_offset"} & set(attrs):
        # CF masking in the decode threads, into the output itself: what xarray's mask_and_scale would
        # give (integers become float32, or float64 from 4 bytes up), without its single-threaded copy
        decoded = stored if stored.kind == "f" else np.dtype(np.float32 if stored.itemsize <= 2 else np.float64)
        decoded = decoded.newbyteorder("=")
        attrs = {k: v for k, v in attrs.items() if k != "_FillValue"}
        encoding.update(_FillValue=fill, dtype=stored)
    else:
        fill = None
    if _engine_decodes_times(decode_times) and attrs.get("units") == icesat2.TIME_UNITS and decoded == np.float64:
        # CF time decoding in the decode threads too, to the nanosecond what xarray's would give
        convert = (decoded, functools.partial(decode.seconds_to_datetime64, epoch=icesat2.ATLAS_EPOCH))
        decoded = np.dtype("datetime64[ns]")
        encoding.update(units=attrs["units"], dtype=stored)
        attrs = {k: v for k, v in attrs.items() if k != "units"}
    array = RaggedArray(reader, pieces, decoded, trailing, siblings=siblings, fill=fill, convert=convert)
    chunks = tuple(size for p in array.pieces for size in _chunk_sizes(p.rows))
    if chunks:
        encoding["preferred_chunks"] = {dims[0]: chunks}
    return xr.Variable(dims, _lazy(array), attrs, encoding)


def _chunk_sizes(rows: int, chunk: int = 10000) -> list[int]:
    return [min(chunk, rows - start) for start in range(0, rows, chunk)]


class SegmentStore(AbstractDataStore):
    """The chosen beams' segments as one ragged ``segment`` dimension."""

    def __init__(self, granule: Granule, beams, variables, drop_variables, mask: bool = True, decode_times=False):
        self.granule = granule
        self.product = granule.product
        self.mask = mask
        chosen, undefined = icesat2.beams_for(granule.sc_orient, beams)
        if undefined and WARN_TRANSITION.get():
            warnings.warn(
                f"{granule.url}: spacecraft orientation is 'transition' (sc_orient=2), so beams={beams!r} is "
                "undefined; returning an empty dataset. Pass an explicit list such as beams=['gt1l', 'gt2l'] "
                "to read it anyway (science quality is degraded during transitions).",
                Is2gridWarning,
                stacklevel=5,
            )
        self.beams = chosen
        self.names = _select_names(self.product, variables, drop_variables)
        wanted = {*self.names, "latitude"}
        self.decode_times = decode_times
        # xarray checks that times decode by reading the first and last; not when the engine decodes them
        xarray_decodes = bool(decode_times) and not _engine_decodes_times(decode_times)
        self.rows = granule.segment_rows_of(chosen, wanted, time_probe=xarray_decodes and icesat2.TIME in self.names)
        self.names = self._without_missing(self.names, explicit=variables is not None)

    def _without_missing(self, names: list[str], *, explicit: bool) -> list[str]:
        """The names the granule has in every beam with segments; the others left out with one warning.

        A variable subset (an NSIDC order with variables chosen, a user's own trimmed copy) lacks some
        variables; only the coordinates, and the variables asked for by name, are required.
        """
        table = self.product.segment_variables
        for beam in self.beams:
            if "latitude" not in self.rows[beam] and self.rows[beam]:
                raise CorruptGranuleError(
                    f"{self.granule.url}: {beam}/{table['latitude']} is missing although {beam} has other segment "
                    f"variables. Every {self.product.name} granule has it: the granule is incomplete, download it "
                    "again."
                )
        beams = [b for b in self.beams if self._beam_rows(b)]
        missing = {n: [b for b in beams if n not in self.rows[b]] for n in names}
        missing = {n: lacking for n, lacking in missing.items() if lacking}
        required = [n for n in missing if n in icesat2.COORDINATES or explicit]
        if required:
            name = required[0]
            raise CorruptGranuleError(
                f"{self.granule.url}: {', '.join(f'{b}/{table[name]}' for b in missing[name])} is missing although "
                f"{missing[name][0]} has {self._beam_rows(missing[name][0])} segments"
                + (
                    f". Every {self.product.name} granule has it: the granule is incomplete, download it again."
                    if name in icesat2.COORDINATES
                    else "; it was asked for by name (variables=...). Leave it out of variables=, or use a granule "
                    "that has it (this one may be a variable subset)."
                )
            )
        if missing:
            listed = ", ".join(
                n + ("" if len(lacking) == len(beams) else f" (in {', '.join(lacking)})")
                for n, lacking in missing.items()
            )
            warnings.warn(
                f"{self.granule.url}: left out {len(missing)} variable(s) this granule lacks (a variable subset?): "
                f"{listed}. Choose with variables=[...] or drop_variables=[...] to open it without this warning.",
                Is2gridWarning,
                stacklevel=6,
            )
        return [n for n in names if n not in missing]

    def get_dimensions(self):
        return FrozenDict(segment=sum(self._beam_rows(b) for b in self.beams), trajectory=len(self.beams))

    def _beam_rows(self, beam: str) -> int:
        found = self.rows[beam]
        if "latitude" not in found:
            return 0
        return int(found["latitude"][1].shape[0])

    def get_attrs(self):
        attrs = dict(self.granule.attrs)
        attrs.update(
            beams=" ".join(self.beams),
            featureType="trajectory",
            Conventions="CF-1.8",
            title=self.product.title,
            source=f"ICESat-2 {self.product.name} (NSIDC), read by is2grid",
        )
        return FrozenDict(attrs)

    def get_variables(self):
        counts = [self._beam_rows(b) for b in self.beams]
        variables: dict[str, xr.Variable] = {}
        siblings: list = []
        for name in self.names:
            relpath = self.product.segment_variables[name]
            schema_path = "{beam}/" + relpath
            pieces, dtype = [], self.product.variable_dtype(schema_path)
            for beam, count in zip(self.beams, counts, strict=True):
                if count == 0:
                    continue
                entry = self.rows[beam].get(name)
                if entry is None:
                    raise CorruptGranuleError(
                        f"{self.granule.url}: {beam}/{relpath} is missing although {beam} has "
                        f"{count} segments. The granule is incomplete; download it again."
                    )
                path, meta = entry
                if int(meta.shape[0]) != count:
                    raise CorruptGranuleError(
                        f"{self.granule.url}: {path} has {meta.shape[0]} rows, latitude has {count}."
                    )
                dtype = meta.dtype.newbyteorder("=")
                pieces.append(Piece(path, count))
            variables[name] = _ragged_variable(
                self.granule.reader,
                ("segment",),
                pieces,
                dtype,
                self.product.variable_attrs(schema_path),
                self.mask,
                siblings=siblings,
                decode_times=self.decode_times,
            )
        variables["beam"] = xr.Variable(
            ("segment",),
            _lazy(RepeatedLabelArray(self.beams, counts)),
            {"long_name": "ground track (beam) of the segment", "comment": "gt1l..gt3r"},
        )
        variables["trajectory"] = xr.Variable(
            ("trajectory",),
            np.asarray(self.beams, dtype="<U4"),
            {"cf_role": "trajectory_id", "long_name": "ground track (beam)"},
        )
        variables["row_size"] = xr.Variable(
            ("trajectory",),
            np.asarray(counts, dtype=np.int64),
            {"long_name": "number of segments of each beam", "sample_dimension": "segment"},
        )
        return FrozenDict(variables)

    def close(self):
        self.granule.reader.close()


def _lazy(array):
    from xarray.core import indexing

    return indexing.LazilyIndexedArray(array)


def _select_names(product: Product, variables, drop_variables) -> list[str]:
    valid = product.segment_variables
    if variables is None:
        names = list(product.default_variables)
    else:
        names = [variables] if isinstance(variables, str) else list(variables)
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise ValueError(
                f"variables={names!r}: unknown per-segment {product.name} variable(s) {unknown}. Valid names: "
                f"{sorted(valid)}"
            )
    names = [n for n in dict.fromkeys(names) if n not in icesat2.COORDINATES] + list(icesat2.COORDINATES)
    drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
    return [n for n in names if n not in drop]


class BeamGroupStore(AbstractDataStore):
    """One group of one beam (ATL10 freeboard_segment, leads or reference_surface_section...) at its own length."""

    def __init__(
        self, granule: Granule, beam: str, group: str, drop_variables=None, mask: bool = True, decode_times=False
    ):
        self.granule = granule
        self.mask = mask
        self.decode_times = decode_times
        self.beam, self.group = beam, group
        self.product = granule.product
        self.dim = self.product.beam_groups[group]
        drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
        if group == self.product.segment_group:
            self.entries = granule.segment_rows(beam)
        else:
            found = granule.listing(f"{beam}/{group}")[0]
            self.entries = {name: (f"{beam}/{group}/{name}", meta) for name, meta in sorted(found.items())}
        self.entries = {k: v for k, v in self.entries.items() if k not in drop}

    def get_attrs(self):
        return FrozenDict({"beam": self.beam, "group": self.group, **self.product.group_attrs("{beam}/" + self.group)})

    def get_variables(self):
        rows = {int(meta.shape[0]) for name, (_, meta) in self.entries.items() if name == "latitude"}
        n = rows.pop() if rows else None
        variables = {}
        fixed = self.product.fixed_dims
        for name, (path, meta) in self.entries.items():
            shape = meta.shape
            dims: tuple[str, ...]
            if n is not None and shape[0] == n and not (name in fixed and len(shape) == 1):
                dims = (self.dim, *(fixed.get(name, f"{name}_dim{i}") for i in range(1, len(shape))))
            else:
                dims = (fixed[name],) if name in fixed else tuple(f"{name}_dim{i}" for i in range(len(shape)))
            piece = Piece(path, shape[0])
            variables[name] = _ragged_variable(
                self.granule.reader,
                dims,
                [piece],
                meta.dtype.newbyteorder("="),
                self.product.variable_attrs("{beam}/" + path.split("/", 1)[1]),
                self.mask,
                trailing=shape[1:],
                decode_times=self.decode_times,
            )
        return FrozenDict(variables)

    def close(self):
        self.granule.reader.close()
