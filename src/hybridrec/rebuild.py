"""The command that remakes a damaged result file, for the errors that name one.

Its own module, free of heavy imports, so that readers of cached files (the predictions reader,
``python -m hybridrec.verify``) can name the command without depending on each other.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path


def rebuild_command(path: str | Path, configfiles: Sequence[str] = ()) -> str:
    """The shell command that replaces a damaged file: ``snakemake --force <file>`` (that job
    only; the next ordinary run reruns its consumers), with the run's ``--configfile``
    arguments. A training checkpoint is moved aside instead: training resumes from the newest
    intact one."""
    path = Path(path)
    if "checkpoints" in path.parts:
        return f"mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.damaged')}"
    command = f"snakemake --force {shlex.quote(str(path))}"
    if configfiles:
        command += " --configfile " + " ".join(map(shlex.quote, configfiles))
    return command
