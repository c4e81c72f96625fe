"""Kept for code that imports :func:`connect_dask` from here: it lives in the Dask executor.

See :mod:`ploomber_like.executors.dask`.
"""

from ploomber_like.executors.dask import connect_dask

__all__ = ["connect_dask"]
