"""The filters' variables: $gzip_ratio (gzip.py), $sent_trailer_* (trailers.py), SSI's
$date_local and $date_gmt (ssi.py, with `config timefmt`).

Read by the variables registry (routing/variables.py) from the list in ngate/http/modules.py.
"""
from __future__ import annotations

from ngate.filters.ssi import date_variable
from ngate.filters.trailers import sent_trailer
from ngate.routing.variables import Getter


def _gzip_ratio(ctx):
    g = ctx.gzip
    return None if g is None else g.ratio()


def _date_local(ctx):
    return date_variable(ctx, False)


def _date_gmt(ctx):
    return date_variable(ctx, True)


def _sent_trailer(suffix: str) -> Getter:
    key = suffix.lower().replace("_", "-").encode("latin-1")
    return lambda ctx: sent_trailer(ctx, key)


VARIABLES = {"gzip_ratio": _gzip_ratio, "date_local": _date_local, "date_gmt": _date_gmt}

PREFIXES = {"sent_trailer_": _sent_trailer}
