"""The data and hybrid stages at 100k to 1M users: wall time and peak memory per rule.

For each ``--users`` size, in a fresh copy of the workflow under ``--workdir``:

1. ``snakemake`` builds the dataset (rule ``preprocess``: the demo generator at that size and
   ``--items`` items) and the ``uniform99`` and ``pop100`` candidates (rule ``candidates``);
2. ``benchmarks/scale/synthetic_exports.py`` writes both branches' top-k exports (``full`` and
   ``uniform99``, valid and test) where the DAG expects the models' (no training: see there);
3. ``snakemake --allowed-rules`` (every rule but training and evaluation) runs the hybrid
   stage: align, features, SHAP, the gate search (shards, gather), fusion, the hybrid tables.

Per rule, wall seconds and peak RSS come from the ``benchmark:`` file every job writes
(``benchmarks/out/``); the exports' from ``/usr/bin/time``. The script prints one table per
size and, for two or more sizes, the growth of each figure from the smallest to the largest.

    timeout 3h /usr/bin/time -v \\
        python benchmarks/scale_run.py --users 100000 300000 1000000
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("workflow", "config", "envs", "profiles")
OVERLAY = REPO / "benchmarks" / "scale" / "config.yaml"
EXPORTER = REPO / "benchmarks" / "scale" / "synthetic_exports.py"
DATASET = "scale"
SAMPLED = ("uniform99", "pop100")
HYBRID_RULES = ("align", "features", "shap", "gate_search_shard", "gate_search_gather",
                "fusion", "hybrid_tables")


def prepare(workdir: Path, users: int, items: int, trials: int | None,
            protocols: list[str]) -> list[str]:
    """A fresh copy of the workflow in ``workdir``; returns the config-file arguments."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, workdir / name)
    size: dict = {"datasets": {DATASET: {"demo": {"users": users, "items": items}}},
                  "hybrid": {"protocols": protocols}}
    if trials is not None:
        size["gate_search"] = {"trials": trials}
    (workdir / "size.yaml").write_text(yaml.safe_dump(size))
    shutil.copy(OVERLAY, workdir / "scale.yaml")
    return ["--configfile", "config/config.yaml", "scale.yaml", "size.yaml"]


def snakemake(workdir: Path, config: list[str], targets: list[str], cores: int,
              allowed: tuple[str, ...] | None = None) -> float:
    command = [sys.executable, "-m", "snakemake", *targets, "--cores", str(cores), *config]
    if allowed:
        command += ["--allowed-rules", *allowed]
    return timed(command, workdir)


def timed(command: list[str], workdir: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True)
    return time.perf_counter() - start


def rule_figures(workdir: Path) -> pd.DataFrame:
    """One row per job: rule, job (its wildcards), seconds, peak RSS in MB."""
    rows = []
    for path in sorted((workdir / "benchmarks" / "out").rglob("*.tsv")):
        figures = pd.read_csv(path, sep="\t").iloc[0]
        relative = path.relative_to(workdir / "benchmarks" / "out").with_suffix("")
        folder, name = relative.parts[0], relative.parts[-1]
        rule = (next(r for prefix, r in HYBRID_FILES if name.startswith(prefix))
                if folder == "hybrid" else name if folder == "tables" else folder)
        job = "/".join(p for p in relative.parts[1:] if p not in (DATASET, rule))
        rows.append({"rule": rule, "job": job, "s": float(figures["s"]),
                     "max_rss_mb": float(figures["max_rss"])})
    exports = workdir / "exports.time"
    if exports.exists():
        seconds, kilobytes = exports.read_text().split()
        rows.append({"rule": "exports (synthetic)", "job": "2 branches x 2 protocols x 2 splits",
                     "s": float(seconds), "max_rss_mb": int(kilobytes) / 1024})
    return pd.DataFrame(rows)


# benchmark file name prefix under benchmarks/out/hybrid/ -> rule
HYBRID_FILES = (("align", "align"), ("features", "features"), ("shap", "shap"),
                ("search_shard", "gate_search_shard"), ("search_gather", "gate_search_gather"),
                ("fusion", "fusion"))


def run_size(root: Path, users: int, items: int, cores: int, trials: int | None,
             protocols: list[str]) -> pd.DataFrame:
    workdir = root / f"{users}"
    config = prepare(workdir, users, items, trials, protocols)
    data = f"results/data/{DATASET}"
    wall = {"data": snakemake(workdir, config, [f"{data}/stats.json", *(
        f"{data}/candidates/{split}.{protocol}.parquet"
        for protocol in SAMPLED for split in ("valid", "test"))], cores)}
    wall["exports"] = timed(["/usr/bin/time", "-f", "%e %M", "-o", "exports.time",
                             sys.executable, str(EXPORTER), data, "--dataset", DATASET], workdir)
    targets = [f"results/hybrid/{DATASET}/{p}/evaluation.json" for p in protocols]
    wall["hybrid"] = snakemake(workdir, config, [*targets, "results/tables/table5.csv"], cores,
                               allowed=("preprocess", "candidates", *HYBRID_RULES))
    figures = rule_figures(workdir)
    print(f"\n## {users:,} users, {items:,} items: chain {sum(wall.values()):.0f} s "
          f"(data {wall['data']:.0f} s, exports {wall['exports']:.0f} s, hybrid "
          f"{wall['hybrid']:.0f} s, each with Snakemake's start)\n")
    print(figures.to_markdown(index=False, floatfmt=".1f"))
    return figures.assign(users=users)


def growth(table: pd.DataFrame) -> pd.DataFrame:
    """Per job run at every size: seconds and peak RSS at each, and largest / smallest."""
    sizes = sorted(table["users"].unique())
    wide = table.pivot_table(index=["rule", "job"], columns="users", values=["s", "max_rss_mb"])
    wide = wide.dropna()  # jobs of every size (a size may run fewer hybrid protocols)
    lo, hi = sizes[0], sizes[-1]
    out = pd.DataFrame(index=wide.index)
    for n in sizes:
        out[f"s @{n:,}"] = wide[("s", n)]
    for n in sizes:
        out[f"MB @{n:,}"] = wide[("max_rss_mb", n)]
    out[f"time x (users x{hi / lo:g})"] = wide[("s", hi)] / wide[("s", lo)]
    out["memory x"] = wide[("max_rss_mb", hi)] / wide[("max_rss_mb", lo)]
    return out.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--trials", type=int, help="gate_search.trials (default: the config's)")
    parser.add_argument("--protocols", nargs="+", default=["full", "uniform99"],
                        choices=["full", "uniform99"], help="hybrid.protocols")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/hybridrec-scale"))
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: print the tables of the sizes already in --workdir")
    args = parser.parse_args()
    if args.collect:
        tables = [rule_figures(args.workdir / f"{n}").assign(users=n) for n in args.users]
        for n, table in zip(args.users, tables, strict=True):
            print(f"\n## {n:,} users\n")
            print(table.drop(columns="users").to_markdown(index=False, floatfmt=".1f"))
    else:
        tables = [run_size(args.workdir, n, args.items, args.cores, args.trials,
                           args.protocols) for n in args.users]
    if len(tables) > 1:
        print("\n## Growth\n")
        print(growth(pd.concat(tables)).to_markdown(index=False, floatfmt=".1f"))


if __name__ == "__main__":
    main()
