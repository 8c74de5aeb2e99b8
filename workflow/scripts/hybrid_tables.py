from hybridrec.io import write_csv
from hybridrec.jobs.shap import shap_ranking
from hybridrec.provenance import start_job
from hybridrec.reporting.tables import (
    gate_settings_table,
    hybrid_extended_table,
    hybrid_table,
    load_evaluations,
    winners_by_split,
)

start_job(snakemake)
params, inputs = snakemake.params, snakemake.input
evaluations = load_evaluations([tuple(run) for run in params.runs], inputs.evaluations)
write_csv(hybrid_table(evaluations, params.paper_names), snakemake.output.table5)
write_csv(hybrid_extended_table(evaluations), snakemake.output.extended)
write_csv(winners_by_split(evaluations, inputs.winners_valid, inputs.winners_test,
                           params.paper_names), snakemake.output.table6)
write_csv(gate_settings_table(evaluations, [shap_ranking(path) for path in inputs.shap]),
          snakemake.output.gate_settings)
