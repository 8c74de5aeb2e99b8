"""The hybrid stage's jobs, one module per Snakemake rule: files in, files out.

align -> features -> explain (SHAP) -> gate_search (shards, gather) -> fusion. Layouts are in
docs/contracts.md; every job runs once per dataset and protocol
(``results/hybrid/{dataset}/{protocol}/``). Aligned lists are stored in the dataset's ORIGINAL
ids, so a branch trained elsewhere joins through its own id tables.
"""

from hybridrec.hybrid.list_metrics import CUTOFF

TOP_N = CUTOFF
"""The paper fuses, and scores, top-10 lists; deeper exports serve score-level fusion only."""
