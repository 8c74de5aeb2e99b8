"""Our workflow used as a Snakemake `module` by another workflow (the catalog's usage), on demo.

A dry run only: it builds the whole DAG through the module (config validation, every input
function, report captions found relative to our files); the demo run itself is test_workflow's.
"""

from __future__ import annotations

import pytest
from workflow_helpers import REPO, snakemake

pytestmark = pytest.mark.integration

WRAPPER = f"""\
configfile: "{REPO}/config/config.yaml"
configfile: "{REPO}/config/demo.yaml"


module hybridrec:
    snakefile:
        "{REPO}/Snakefile"
    config:
        config


use rule * from hybridrec as hybridrec_*


rule all:
    input:
        rules.hybridrec_all.input,
    default_target: True
"""


def test_a_wrapper_workflow_imports_ours_as_a_module_on_demo(tmp_path):
    (tmp_path / "Snakefile").write_text(WRAPPER)
    result = snakemake(tmp_path, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in ("preprocess", "candidates", "train", "evaluate", "fusion", "hybrid_tables",
                 "report_pages"):
        assert f"rule hybridrec_{rule}:" in result.stdout, rule
    assert "dataset=demo" in result.stdout and "dataset=ml-1m" not in result.stdout
