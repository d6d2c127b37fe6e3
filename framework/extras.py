"""The optional packages, imported in one place (uproot's ``extras.py`` pattern).

The core install (numpy, awkward, uproot, tritonclient, onnxruntime, rich) runs the direct ParT/DeepMET job.
Every other package belongs to an extra of ``pyproject.toml`` and is imported here, at the point of use, by a
function that returns the module or raises :class:`~framework.exceptions.MissingExtra`: one paragraph naming the
feature, the package and the ``pip install 'cmssw-py-framework[extra]'`` that brings it.
"""

from __future__ import annotations

import importlib
from importlib.machinery import ModuleSpec
from types import ModuleType

from .exceptions import MissingExtra

EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("nvidia-pytriton",),
    "plots": ("hist", "mplhep", "matplotlib"),
    "nugraph": ("torch", "scipy", "h5py"),
    "dqm": ("hist", "scikit-learn", "joblib", "mlserver", "mlserver-sklearn"),
    "dask": ("dask[distributed]",),
    "metrics": ("prometheus_client",),
}
"""The extras of ``pyproject.toml`` and the distributions each brings (``all`` is their union)."""


def require(module: str, extra: str, feature: str, distribution: str | None = None) -> ModuleType:
    """Import *module* (dotted names too); a MissingExtra for *feature* when it (or a package it needs) is
    missing. *distribution* is the pip name when it differs from the module's top-level name."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; extras: {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise MissingExtra(extra, module.split(".")[0], feature=feature, distribution=distribution) from err


def hist(feature: str = "the DQM histograms") -> ModuleType:
    """The ``hist`` package (extras ``dqm`` and ``plots``)."""
    return require("hist", "dqm", feature)


def matplotlib(feature: str = "plots") -> ModuleType:
    """``matplotlib`` with the non-interactive Agg backend selected (extra ``plots``)."""
    mpl = require("matplotlib", "plots", feature)
    mpl.use("Agg")
    return mpl


def pyplot(feature: str = "plots") -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (extra ``plots``)."""
    matplotlib(feature)
    return require("matplotlib.pyplot", "plots", feature, "matplotlib")


def mplhep(feature: str = "plots") -> ModuleType:
    """The ``mplhep`` package (extra ``plots``)."""
    return require("mplhep", "plots", feature)


def torch(feature: str = "the NuGraph3 producers") -> ModuleType:
    """PyTorch (extra ``nugraph``)."""
    return require("torch", "nugraph", feature)


def scipy_spatial(feature: str = "the NuGraph3 preprocessing") -> ModuleType:
    """``scipy.spatial`` (Delaunay triangulation; extra ``nugraph``)."""
    return require("scipy.spatial", "nugraph", feature, "scipy")


def h5py(feature: str = "NuML HDF5 files") -> ModuleType:
    """The ``h5py`` package (extra ``nugraph``)."""
    return require("h5py", "nugraph", feature)


def sklearn_decomposition(feature: str = "the DQM NMF model") -> ModuleType:
    """``sklearn.decomposition`` (extra ``dqm``)."""
    return require("sklearn.decomposition", "dqm", feature, "scikit-learn")


def joblib(feature: str = "the DQM NMF model") -> ModuleType:
    """The ``joblib`` package (extra ``dqm``)."""
    return require("joblib", "dqm", feature)


def mlserver(feature: str = "the DQM NMF model's MLServer service") -> ModuleType:
    """The ``mlserver`` package (extra ``dqm``; Python < 3.13)."""
    return require("mlserver", "dqm", feature)


def dask(feature: str = "executor=dask") -> ModuleType:
    """``dask`` (extra ``dask``)."""
    return require("dask", "dask", feature, "dask[distributed]")


def distributed(feature: str = "executor=dask") -> ModuleType:
    """``dask.distributed`` (extra ``dask``)."""
    dask(feature)
    return require("dask.distributed", "dask", feature, "dask[distributed]")


def prometheus_client(feature: str = "metricsPort=") -> ModuleType:
    """The ``prometheus_client`` package (extra ``metrics``)."""
    return require("prometheus_client", "metrics", feature)


def pytriton_spec(feature: str = "the local Triton server (sonic=1 without a server address)") -> ModuleSpec:
    """The import spec of ``pytriton`` (the ``nvidia-pytriton`` wheel, which holds the bundled tritonserver;
    extra ``server``): found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("pytriton")
    except ModuleNotFoundError:  # a finder that refuses it (tests/test_extras_import_blocker.py)
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra("server", "pytriton", feature=feature, distribution="nvidia-pytriton")
    return spec


__all__ = ["EXTRAS", "require", "hist", "matplotlib", "pyplot", "mplhep", "torch", "scipy_spatial", "h5py",
           "sklearn_decomposition", "joblib", "mlserver", "dask", "distributed", "prometheus_client",
           "pytriton_spec"]
