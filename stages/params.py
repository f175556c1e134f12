"""What every stage script does first: read params.yaml, or stop with one line that names the
bad key or file (`dvc repro` shows it as the stage's error) instead of a traceback."""

import sys

from pipeline.config import Params, ParamsError, load_params


def stage_params() -> Params:
    try:
        return load_params()
    except (ParamsError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
