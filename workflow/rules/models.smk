# Per-model training, evaluation under every protocol, top-k export, learning curves, Tables I-III,
# the ablation table (variants of a model under several seeds: hybridrec.variants).


rule train:
    input:
        train="results/data/{dataset}/split/train.parquet",
        valid="results/data/{dataset}/split/valid.parquet",
        candidates=lambda w: validation_candidates(w.dataset),
        text=item_text_embeddings,
    output:
        model="results/models/{dataset}/{model}/model.pt",
        history="results/models/{dataset}/{model}/history.parquet",
    params:
        root=lambda w: f"results/data/{w.dataset}",
        settings=model_settings,
        seed=training_seed,
        device=config["training"]["device"],
        bf16=config["training"]["bf16"],
        threads=config["training"]["threads"],
        protocols=SELECTION_PROTOCOLS,
        eval_batch_size=config["evaluation"]["batch_size"],
        checkpoints=lambda w: f"results/models/{w.dataset}/{w.model}/checkpoints",
        code=model_script_code("train"),
        upstream=upstream("train"),
    log:
        "logs/train/{dataset}/{model}.log",
    benchmark:
        "benchmarks/out/train/{dataset}/{model}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: JOB_THREADS
    resources:
        mem_mb=8000,
        runtime=720,
        # counted against `--resources gpu=N`; the job claims a distinct device itself
        gpu=0 if config["training"]["device"] == "cpu" else 1,
    script:
        "../scripts/train.py"


# datasets.<name>.weights_from: a published bundle's weights instead of training, for the
# dataset's models and the ablation's runs there (checked before any job in common.smk)
ruleorder: import_weights > train


rule import_weights:
    input:
        weights=lambda w: WEIGHTS_FROM[w.dataset][w.model].path,
        history=lambda w: WEIGHTS_FROM[w.dataset][w.model].history,
    output:
        model="results/models/{dataset}/{model}/model.pt",
        history="results/models/{dataset}/{model}/history.parquet",
    params:
        source=published_weights,
        code=script_code("import_weights"),
        upstream=upstream("import_weights"),
    log:
        "logs/import_weights/{dataset}/{model}.log",
    benchmark:
        "benchmarks/out/import_weights/{dataset}/{model}.tsv"
    wildcard_constraints:
        dataset=one_of(WEIGHTS_FROM),
        model=one_of({name for runs in WEIGHTS_FROM.values() for name in runs}),
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/import_weights.py"


rule evaluate:
    input:
        model="results/models/{dataset}/{model}/model.pt",
        data=lambda w: evaluation_data(w.dataset),
        text=item_text_embeddings,
    output:
        metrics="results/metrics/{dataset}/{model}.json",
        # the top-k lists of every protocol a hybrid run reads (hybrid.protocols)
        predictions=expand(
            "results/predictions/{{dataset}}/{{model}}/{protocol}/{split}.parquet",
            protocol=EXPORT_PROTOCOLS,
            split=EVAL_SPLITS,
        ),
    params:
        root=lambda w: f"results/data/{w.dataset}",
        protocols=SELECTION_PROTOCOLS,
        export_protocols=EXPORT_PROTOCOLS,
        topk=config["evaluation"]["topk"],
        batch_size=config["evaluation"]["batch_size"],
        threads=config["training"]["threads"],
        device=config["training"]["device"],
        code=model_script_code("evaluate"),
        upstream=upstream("evaluate"),
    log:
        "logs/evaluate/{dataset}/{model}.log",
    benchmark:
        "benchmarks/out/evaluate/{dataset}/{model}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: JOB_THREADS
    resources:
        mem_mb=8000,
        gpu=0 if config["training"]["device"] == "cpu" else 1,
    script:
        "../scripts/evaluate.py"


rule learning_curve:
    input:
        "results/models/{dataset}/{model}/history.parquet",
    output:
        report(
            "results/figures/learning_curve_{dataset}_{model}.png",
            caption="../report/learning_curve.rst",
            category="Training",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "model": "{model}"},
        ),
    params:
        protocol=config["evaluation"]["protocol"],
        code=script_code("learning_curve"),
        upstream=upstream("learning_curve"),
    log:
        "logs/figures/learning_curve_{dataset}_{model}.log",
    benchmark:
        "benchmarks/out/figures/learning_curve_{dataset}_{model}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/learning_curve.py"


rule model_tables:
    input:
        metrics=[f"results/metrics/{dataset}/{model}.json"
                 for dataset in DATASETS for model in models_of(dataset)],
    output:
        table1=report(
            "results/tables/table1.csv", caption="../report/table1.rst", category="Tables"
        ),
        table2=report(
            "results/tables/table2.csv", caption="../report/table2.rst", category="Tables"
        ),
        table3=report(
            "results/tables/table3.csv", caption="../report/table3.rst", category="Tables"
        ),
    params:
        protocol=config["evaluation"]["protocol"],
        paper_names=PAPER_NAMES,
        code=script_code("model_tables"),
        upstream=upstream("model_tables"),
    log:
        "logs/tables/model_tables.log",
    benchmark:
        "benchmarks/out/tables/model_tables.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/model_tables.py"


rule ablation_table:
    input:
        metrics=ablation_metrics,
    output:
        table=report(
            "results/tables/ablation/{dataset}.csv",
            caption="../report/ablation.rst",
            category="Tables",
            labels={"table": "ablation", "dataset": "{dataset}"},
        ),
        markdown="results/tables/ablation/{dataset}.md",
    params:
        rows=ablation_rows,
        protocols=lambda w: ablations(w.dataset)["protocols"],
        code=script_code("ablation_table"),
        upstream=upstream("ablation_table"),
    log:
        "logs/tables/ablation_{dataset}.log",
    benchmark:
        "benchmarks/out/tables/ablation_{dataset}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/ablation_table.py"
