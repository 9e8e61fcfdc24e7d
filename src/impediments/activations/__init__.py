"""Activation catalog with analytic derivatives, gains and numerically computed regions.

>>> from impediments import activations as A
>>> A.get("sigmoid").saturated_region()   # |x| > ln 99 ~ 4.60 at the default tol  # doctest: +SKIP
>>> A.classify(pre_activations, "tanh")    # fractions [saturated, linear, active]  # doctest: +SKIP

See :mod:`impediments.activations.regions` for the region definitions.
"""
from impediments.activations.catalog import (
    CATALOG,
    MODULE_TYPES,
    TAXONOMY,
    Activation,
    IdentityActivation,
    Taxonomy,
    display_name,
    flat_region_name,
    get,
    kinds_of,
    module_kind,
    names,
    taxonomy,
)
from impediments.activations.regions import (
    LINEAR_TOL,
    SATURATION_TOL,
    classify,
    linear_intervals,
    region_counts,
    saturated_intervals,
)

REGIONS = ("saturated", "linear", "active")  # order of classify / region_counts; region 0 is named per kind by
# flat_region_name: "inactive" for rectifiers

__all__ = ["CATALOG", "LINEAR_TOL", "MODULE_TYPES", "REGIONS", "SATURATION_TOL", "TAXONOMY", "Activation",
           "IdentityActivation", "Taxonomy", "classify", "display_name", "flat_region_name", "get", "kinds_of",
           "linear_intervals", "module_kind", "names", "region_counts", "saturated_intervals", "taxonomy"]
