from hybridrec.cpu import configure_cpu_runtime

configure_cpu_runtime()  # MKL and OpenMP read it when torch loads them: before any torch import

from hybridrec.devices import claim_device  # noqa: E402
from hybridrec.logsetup import configure_logging  # noqa: E402
from hybridrec.training.run import save_model, train_on_dataset  # noqa: E402
from hybridrec.training.settings import ModelSettings  # noqa: E402

configure_logging(snakemake.log[0])
settings = ModelSettings(**snakemake.params.settings)
with claim_device(snakemake.params.device) as device:
    model, result = train_on_dataset(
        root=snakemake.params.root,
        settings=settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        placement=str(device),
        bf16=snakemake.params.bf16,
        protocol=snakemake.params.protocol,
        eval_batch_size=snakemake.params.eval_batch_size,
        checkpoint_dir=snakemake.params.checkpoints,
        history_path=snakemake.output.history,
        threads=snakemake.params.threads,
    )
save_model(model, settings, result, snakemake.output.model)
