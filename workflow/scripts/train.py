from hybridrec.cpu import configure_cpu_runtime

configure_cpu_runtime()  # MKL and OpenMP read it when torch loads them: before any torch import

from hybridrec.cpu import available_cores  # noqa: E402
from hybridrec.devices import claim_device  # noqa: E402
from hybridrec.jobs.train import save_model, train_on_dataset  # noqa: E402
from hybridrec.provenance import add_to_record, start_job  # noqa: E402
from hybridrec.training.settings import ModelSettings  # noqa: E402

start_job(snakemake)
settings = ModelSettings(**snakemake.params.settings)
with claim_device(snakemake.params.device) as device:
    add_to_record(device=str(device), threads=snakemake.params.threads or available_cores())
    model, result, item_text = train_on_dataset(
        root=snakemake.params.root,
        settings=settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        placement=str(device),
        bf16=snakemake.params.bf16,
        protocols=snakemake.params.protocols,
        eval_batch_size=snakemake.params.eval_batch_size,
        checkpoint_dir=snakemake.params.checkpoints,
        history_path=snakemake.output.history,
        threads=snakemake.params.threads,
        item_embeddings=snakemake.input.text or None,
    )
save_model(model, settings, result, snakemake.output.model, item_text)
