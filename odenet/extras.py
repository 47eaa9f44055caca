"""Optional dependencies (extras): imported only by the code that needs them, with one clear
error naming the extra to install when missing.

``require("pandas", "pandas", "dataframe()")`` returns the module, or raises ConfigError
"dataframe() needs pandas, which is not installed: pip install "odenet[pandas]"" (exit 2 at
the command line, before anything runs).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from odenet.errors import ConfigError


def install_hint(extra: str) -> str:
    """The command that installs odenet's optional dependency ``extra``."""
    return f'pip install "odenet[{extra}]"'


def require(module: str, extra: str, feature: str, name: str | None = None) -> ModuleType:
    """The module ``module`` (e.g. "tensorboard"), or ConfigError saying that ``feature``
    needs it (as ``name``, default the module's name) and how to install ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{feature} needs {name or module}, which is not installed: {install_hint(extra)}"
        ) from None
