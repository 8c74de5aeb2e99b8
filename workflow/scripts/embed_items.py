from hybridrec.data.sources import load_item_text
from hybridrec.logsetup import configure_logging
from hybridrec.text.embeddings import write_item_embeddings
from hybridrec.text.encoders import EncoderSpec
from hybridrec.training.loop import available_cores

configure_logging(snakemake.log[0])
text_files = snakemake.input.text
text = load_item_text(snakemake.params.item_text, snakemake.params.demo,
                      text_files[0] if text_files else None)
write_item_embeddings(snakemake.input.item_ids, text, EncoderSpec(**snakemake.params.encoder),
                      seed=snakemake.params.seed,
                      threads=snakemake.params.threads or available_cores(),
                      source=text_files[0] if text_files else "demo",
                      output=snakemake.output[0])
