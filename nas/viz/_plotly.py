"""The one place plotly is imported, guarded as Optuna's ``_plotly_imports.py`` does it.

Every chart module takes ``go`` from here; a missing plotly surfaces as one `NasError` with the fix,
raised by `check()` when a figure is asked for, not as an ImportError at ``import nas.viz``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from nas.errors import NasError


class _DeferredImport:
    """A context manager that swallows an ImportError and keeps it for `check()`."""

    def __init__(self) -> None:
        self.error: ImportError | None = None

    def __enter__(self) -> _DeferredImport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if isinstance(exc, ImportError):
            self.error = exc
            return True
        return False

    def is_successful(self) -> bool:
        return self.error is None

    def check(self) -> None:
        if self.error is not None:
            raise NasError(f"the dashboard needs plotly, which did not import ({self.error})",
                           "pip install 'plotly>=5.18' (a dependency of hybrid-nas)")


go: Any = None
pio: Any = None
get_plotlyjs: Any = None
with _DeferredImport() as _imports:
    import plotly.graph_objects as go  # noqa: F811
    import plotly.io as pio  # noqa: F811
    from plotly.offline import get_plotlyjs  # noqa: F811


def check() -> None:
    """Raise NasError naming the fix when plotly could not be imported."""
    _imports.check()


__all__ = ["check", "get_plotlyjs", "go", "pio"]
