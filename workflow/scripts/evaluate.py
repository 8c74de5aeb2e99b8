from hybridrec.cpu import configure_cpu_runtime

configure_cpu_runtime()  # MKL and OpenMP read it when torch loads them: before any torch import

from hybridrec.devices import claim_device  # noqa: E402
from hybridrec.evaluation.report import evaluate_and_export  # noqa: E402
from hybridrec.logsetup import configure_logging  # noqa: E402

configure_logging(snakemake.log[0])
with claim_device(snakemake.params.device) as device:
    evaluate_and_export(
        model_path=snakemake.input.model,
        dataset_root=snakemake.params.root,
        dataset=snakemake.wildcards.dataset,
        protocols=snakemake.params.protocols,
        export_protocol=snakemake.params.export_protocol,
        k=snakemake.params.topk,
        batch_size=snakemake.params.batch_size,
        metrics_path=snakemake.output.metrics,
        prediction_paths=dict(
            zip(["valid", "test"], snakemake.output.predictions, strict=True)
        ),
        threads=snakemake.params.threads,
        device=str(device),
    )
