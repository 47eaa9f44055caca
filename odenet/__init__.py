"""odenet: residual networks as discretised ordinary differential equations.

The public API is re-exported here on purpose; everything else is implementation.
"""

from importlib.metadata import PackageNotFoundError, version

from odenet import solvers
from odenet.errors import ConfigError, DataError, OdenetError

try:
    __version__ = version("odenet")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

__all__ = ["ConfigError", "DataError", "OdenetError", "__version__", "solvers"]
