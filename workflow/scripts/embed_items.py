from hybridrec.cpu import available_cores
from hybridrec.data.sources import load_item_text
from hybridrec.provenance import start_job
from hybridrec.text.embeddings import write_item_embeddings
from hybridrec.text.encoders import EncoderSpec

start_job(snakemake)
text_files = snakemake.input.text
text = load_item_text(snakemake.params.item_text, snakemake.params.demo,
                      text_files[0] if text_files else None)
write_item_embeddings(snakemake.input.item_ids, text, EncoderSpec(**snakemake.params.encoder),
                      seed=snakemake.params.seed,
                      threads=snakemake.params.threads or available_cores(),
                      source=text_files[0] if text_files else "demo",
                      output=snakemake.output[0])
