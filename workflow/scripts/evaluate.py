from itertools import product

from hybridrec.devices import claim_device
from hybridrec.evaluation.run import evaluate_and_export
from hybridrec.logsetup import configure_logging

configure_logging(snakemake.log[0])
exports = product(snakemake.params.export_protocols, ["valid", "test"])
with claim_device(snakemake.params.device) as device:
    evaluate_and_export(
        model_path=snakemake.input.model,
        dataset_root=snakemake.params.root,
        dataset=snakemake.wildcards.dataset,
        protocols=snakemake.params.protocols,
        k=snakemake.params.topk,
        batch_size=snakemake.params.batch_size,
        metrics_path=snakemake.output.metrics,
        prediction_paths=dict(zip(exports, snakemake.output.predictions, strict=True)),
        threads=snakemake.params.threads,
        device=str(device),
    )
