from hybridrec.cpu import configure_cpu_runtime

configure_cpu_runtime()  # MKL and OpenMP read it when torch loads them: before any torch import

from itertools import product  # noqa: E402

from hybridrec.cpu import available_cores  # noqa: E402
from hybridrec.devices import claim_device  # noqa: E402
from hybridrec.jobs.evaluate import evaluate_and_export  # noqa: E402
from hybridrec.provenance import add_to_record, start_job  # noqa: E402

start_job(snakemake)
exports = product(snakemake.params.export_protocols, ["valid", "test"])
with claim_device(snakemake.params.device) as device:
    add_to_record(device=str(device), threads=snakemake.params.threads or available_cores())
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
        item_embeddings=snakemake.input.text or None,
    )
