"""File importers of the oracle: price history, catalogs and the Spot Advisor, told by content.

``import_files(engine, paths)`` imports one or more files in one transaction (all or nothing)
and returns an :class:`ImportResult` per file. Formats: see :mod:`oracle.importers.detect`.
"""

from oracle.importers.service import ImportResult, import_files

__all__ = ["ImportResult", "import_files"]
