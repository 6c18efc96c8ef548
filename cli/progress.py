"""The CLIs' progress helpers: ``quiet_library_bars`` (``--no-progress``) and, re-exported from ``runio.console``
(where the runners use them), the progress bar and the stdout console."""

from __future__ import annotations

import os
import sys

from runio.console import make_progress, progress_bar, stdout_console  # noqa: F401  (re-exported for the CLIs)
from runio.rundir import ALREADY_FINISHED  # noqa: F401  (re-exported for the CLIs)


def quiet_library_bars(progress: bool) -> bool:
    """With ``--no-progress`` (``progress`` False), the libraries' own bars go quiet too: transformers' "Loading
    weights" and huggingface_hub's downloads (through their switch, the environment variable they read at import, and
    their functions when already imported; nothing heavy is imported here). The typer callback of ``--progress``."""
    if not progress:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["TQDM_DISABLE"] = "1"  # every other tqdm bar (transformers' GGUF conversion, sae-lens's trainer)
        if "huggingface_hub.utils" in sys.modules:
            sys.modules["huggingface_hub.utils"].disable_progress_bars()
        if "transformers.utils.logging" in sys.modules:
            sys.modules["transformers.utils.logging"].disable_progress_bar()
    return progress
