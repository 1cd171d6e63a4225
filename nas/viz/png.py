"""PNG export of figures with kaleido, through a Chrome/Chromium found on this machine."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from nas.errors import NasError
from nas.viz import _plotly
from nas.viz._plotly import go, pio

CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROME_HINT = ("install Chromium (e.g. `apt-get install chromium`) or set BROWSER_PATH=/path/to/chrome; "
               "the HTML dashboard needs no browser")


def find_chrome() -> str:
    """The Chrome/Chromium binary kaleido will drive: $BROWSER_PATH when set, else the first on PATH."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        raise NasError(f"BROWSER_PATH={env!r} is not an executable browser", CHROME_HINT)
    for n in CHROME_NAMES:
        p = shutil.which(n)
        if p:
            return p
    raise NasError("PNG export needs Chrome or Chromium, and none was found on PATH", CHROME_HINT)


def write_pngs(figs: dict[str, go.Figure], out_dir: str | Path, *, width: int = 1200, height: int | None = None,
               scale: float = 1.0) -> list[Path]:
    """Write each figure as ``<out_dir>/<name>.png`` with kaleido (one browser for all of them)."""
    _plotly.check()
    if importlib.util.find_spec("kaleido") is None:
        raise NasError("PNG export needs the kaleido package, which is not installed",
                       "pip install 'kaleido>=1' (or install this project with its [png] extra); "
                       "the HTML dashboard needs neither")
    chrome = find_chrome()
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / f"{k}.png" for k in figs]
    old = os.environ.get("BROWSER_PATH")
    os.environ["BROWSER_PATH"] = chrome  # kaleido (choreographer) reads it
    try:
        pio.write_images(list(figs.values()), [str(p) for p in paths], width=width,
                         height=height, scale=scale)
    except Exception as e:  # kaleido/choreographer raise their own types for a browser that will not start
        raise NasError(f"PNG export with {chrome} failed: {type(e).__name__}: {str(e)[:300]}", CHROME_HINT) from None
    finally:
        if old is None:
            os.environ.pop("BROWSER_PATH", None)
        else:
            os.environ["BROWSER_PATH"] = old
    return paths
