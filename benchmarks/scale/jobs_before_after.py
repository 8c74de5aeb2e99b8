"""Wall time, peak RSS and output digests of the data and hybrid jobs, run by two versions of
the package on the same inputs: the before/after of a change, and proof that it kept the
outputs byte for byte.

Reads a finished size of ``benchmarks/scale_run.py`` (``<workdir>/<users>``: its dataset,
exports and gate), runs each job in a fresh process under ``/usr/bin/time`` with
``PYTHONPATH=<src>`` for each ``--src``, outside Snakemake (no provenance record enters the
files), and prints one row per job and version.

    python benchmarks/scale/jobs_before_after.py <workdir>/100000 \\
        --src <old checkout>/src src
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

DATA = "results/data/scale"
RUN = "results/hybrid/scale/full"
BRANCHES = ["linrec", "fmlp"]

# job -> (Python code run in the size's folder, with OUT the output folder; its outputs)
JOBS = {
    "candidates uniform99": (
        "from hybridrec.data.store import write_candidates, candidate_files\n"
        "import shutil\n"
        f"shutil.copytree('{DATA}', OUT + '/data')\n"
        "write_candidates(OUT + '/data', 'uniform99', seed=42, dataset='scale')",
        ["data/candidates/valid.uniform99.parquet", "data/candidates/test.uniform99.parquet"]),
    "align full/valid": (
        "from hybridrec.jobs.align import run_align\n"
        f"run_align({{b: f'results/predictions/scale/{{b}}/full/valid.parquet' for b in "
        f"{BRANCHES}}}, {{b: 'full' for b in {BRANCHES}}}, 'scale', 'valid', "
        "OUT + '/aligned.parquet')",
        ["aligned.parquet"]),
    "features full/valid": (
        "from hybridrec.jobs.features import run_features\n"
        f"run_features('{RUN}/aligned/valid.parquet', {BRANCHES}, '{DATA}/split/valid.parquet', "
        f"'{DATA}/user_ids.parquet', 'scale', 'full', 'valid', OUT + '/features.parquet')",
        ["features.parquet"]),
    "fusion full": (
        "from hybridrec.jobs.fusion import run_fusion\n"
        "run_fusion(OUT + '/evaluation.json', OUT + '/alpha.parquet', OUT + '/fused.parquet', "
        f"OUT + '/alpha.png', title='alpha', aligned_valid='{RUN}/aligned/valid.parquet', "
        f"aligned_test='{RUN}/aligned/test.parquet', features_test='{RUN}/features/test.parquet',"
        f" gate_path='{RUN}/search/gate.pt', branches={BRANCHES}, seed=42, "
        "fusion_seeds=[0, 1, 2, 3, 4], bootstrap_resamples=2000)",
        ["evaluation.json", "alpha.parquet", "fused.parquet"]),
}


def run_job(folder: Path, src: str, code: str, out: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of ``code`` in a fresh process."""
    timing = out / "time.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(timing), sys.executable, "-c",
                    f"OUT = {str(out)!r}\n{code}"], cwd=folder, env=env, check=True)
    seconds, kilobytes = timing.read_text().split()
    return float(seconds), int(kilobytes) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a finished size: <workdir>/<users>")
    parser.add_argument("--src", nargs="+", required=True, help="package folders to compare")
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for job in args.jobs:
            code, outputs = JOBS[job]
            digests = []
            for i, src in enumerate(args.src):
                out = Path(scratch) / f"{job.replace(' ', '_').replace('/', '_')}_{i}"
                out.mkdir()
                seconds, mb = run_job(args.folder, src, code, out)
                digest = hashlib.sha256(b"".join((out / o).read_bytes() for o in outputs))
                digests.append(digest.hexdigest())
                rows.append({"job": job, "package": src, "s": seconds, "peak MB": mb,
                             "outputs identical to the first": digests[-1] == digests[0]})
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f"))


if __name__ == "__main__":
    main()
