"""The published bundles in docs/results: their weights are there, match their records, and
reproduce their metrics without training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_file
from workflow_helpers import REPO, copy_workflow, ran_rules, snakemake

from hybridrec.io import file_checksum
from hybridrec.models.files import read_model

pytestmark = pytest.mark.integration

BUNDLES = sorted(p.parent for p in (REPO / "docs" / "results").glob("*/provenance.json"))


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_every_bundle_carries_its_models_weights_with_their_sha256(bundle: Path) -> None:
    record = json.loads((bundle / "provenance.json").read_text())
    assert set(record["weights"]) == set(record["training"]), "a model without weights"
    for name, weights in record["weights"].items():
        assert file_checksum(bundle / weights["file"]) == f"sha256:{weights['sha256']}", name
        assert file_checksum(bundle / weights["history"]) == \
            f"sha256:{weights['history_sha256']}", name
        saved = read_model(bundle / weights["file"])
        assert {k: s.epoch for k, s in saved.selections.items()} == weights["selected_epochs"]
        # the selected states and nothing else (no optimizer state, no other epoch): a clone
        # carries about 3.4 MB per state at Beauty's size
        tensors = sum(t.numel() * t.element_size() for state in saved.weights.values()
                      for t in state.values())
        assert set(saved.weights) == {s.epoch for s in saved.selections.values()}, name
        assert (bundle / weights["file"]).stat().st_size < 1.02 * tensors + 2**16, name
    published = {bundle / w[key] for w in record["weights"].values() for key in ("file", "history")}
    rest = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and p not in published)
    assert rest < 4 * 2**20, f"{bundle}: {rest / 2**20:.1f} MiB besides the weights"


def test_ml_100k_from_its_published_weights_gives_the_published_metrics(tmp_path: Path) -> None:
    """The README's command in a fresh clone (config/real.yaml, config/published.yaml and
    datasets.ml-100k.weights_from): no training job, each model's and each ablation run's
    metrics file equal to the bundle's, and so the ablation table."""
    raw = shared_file("ml-100k/u.data")
    bundle = REPO / "docs" / "results" / "ml-100k"
    models = sorted(json.loads((bundle / "provenance.json").read_text())["weights"])
    workdir = copy_workflow(tmp_path / "clone")
    (tmp_path / "shared").symlink_to(raw.parents[2])  # ../shared beside the clone, as in CI
    (workdir / "from-bundle.yaml").write_text(
        f"run: {{datasets: [ml-100k]}}\ndatasets: {{ml-100k: {{weights_from: {bundle}}}}}\n")
    ablation = "results/tables/ablation/ml-100k.csv"
    targets = [*(f"results/metrics/ml-100k/{m}.json" for m in models), ablation]
    result = snakemake(workdir, *targets, "--cores", "2", "--configfile", "config/real.yaml",
                       "config/published.yaml", "from-bundle.yaml", timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    ran = set(ran_rules(result))
    assert "train" not in ran and "import_weights" in ran, ran
    for model in models:
        ours = json.loads((workdir / f"results/metrics/ml-100k/{model}.json").read_text())
        theirs = json.loads((bundle / f"metrics/{model}.json").read_text())
        assert ours["splits"] == theirs["splits"], model
        assert ours["training"] == theirs["training"], model
    assert (workdir / ablation).read_text() == (bundle / "tables/ablation.csv").read_text()
