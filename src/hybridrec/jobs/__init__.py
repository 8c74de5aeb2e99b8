"""The jobs: one module per Snakemake rule (or rule family), the only code that reads and writes
the pipeline's files. Each job loads its inputs, calls the stages below it (data, models,
training, evaluation, hybrid, reporting, text), which compute on values, and writes its outputs
atomically. The workflow's scripts call exactly one job function each.
"""
