# Raw data -> preprocessed dataset folders -> Table IV; item text -> item embeddings.


rule download:
    output:
        "resources/{dataset}/download/{archive}",
    params:
        url=lambda w: dataset_config(w)["url"],
        checksum=lambda w: dataset_config(w).get("checksum"),
        upstream=upstream("download"),
    log:
        "logs/download/{dataset}/{archive}.log",
    benchmark:
        "benchmarks/out/download/{dataset}/{archive}.tsv"
    wildcard_constraints:
        archive="[^/]+",
    localrule: True
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=512,
    script:
        "../scripts/download.py"


rule extract:
    input:
        lambda w: f"resources/{w.dataset}/download/{Path(dataset_config(w)['url']).name}",
    output:
        "resources/{dataset}/{member}",
    params:
        member=lambda w: dataset_config(w)["archive_member"],
        checksum=lambda w: dataset_config(w).get("checksum"),
        upstream=upstream("extract"),
    log:
        "logs/extract/{dataset}/{member}.log",
    benchmark:
        "benchmarks/out/extract/{dataset}/{member}.tsv"
    wildcard_constraints:
        member="[^/]+",
    localrule: True
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=512,
    script:
        "../scripts/extract.py"


rule preprocess:
    input:
        raw=raw_input,
    output:
        dataset_outputs("{dataset}"),
    params:
        dataset=interactions_config,
        code=script_code("preprocess"),
        upstream=upstream("preprocess"),
    log:
        "logs/preprocess/{dataset}.log",
    benchmark:
        "benchmarks/out/preprocess/{dataset}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/preprocess.py"


# One sampled protocol's candidates for both evaluation splits, drawn only where a rule asks for
# them; ahead of training (priority), so a catalogue too small for the protocol stops the run
# before any model trains.
rule candidates:
    input:
        lambda w: dataset_outputs(w.dataset),
    output:
        expand(
            "results/data/{{dataset}}/candidates/{split}.{{protocol}}.parquet", split=EVAL_SPLITS
        ),
    params:
        root=lambda w: f"results/data/{w.dataset}",
        seed=config["seed"],
        code=script_code("candidates"),
        upstream=upstream("candidates"),
    log:
        "logs/candidates/{dataset}/{protocol}.log",
    benchmark:
        "benchmarks/out/candidates/{dataset}/{protocol}.tsv"
    wildcard_constraints:
        protocol="|".join(SAMPLED_PROTOCOLS),
    priority: 10
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/candidates.py"


rule embed_items:
    input:
        item_ids="results/data/{dataset}/item_ids.parquet",
        text=item_text_input,
    output:
        "results/text/{dataset}/item_embeddings.parquet",
    params:
        item_text=item_text_config,
        demo=demo_text_settings,
        encoder=text_encoder(),
        seed=config["seed"],
        threads=config["training"]["threads"],
        code=script_code("embed_items"),
        upstream=upstream("embed_items"),
    log:
        "logs/text/{dataset}.log",
    benchmark:
        "benchmarks/out/text/{dataset}.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: JOB_THREADS
    resources:
        mem_mb=4000,
    script:
        "../scripts/embed_items.py"


rule table4:
    input:
        expand("results/data/{dataset}/stats.json", dataset=DATASETS),
    output:
        report("results/tables/table4.csv", caption="../report/table4.rst", category="Tables"),
    params:
        datasets=DATASETS,
        code=script_code("table4"),
        upstream=upstream("table4"),
    log:
        "logs/tables/table4.log",
    benchmark:
        "benchmarks/out/tables/table4.tsv"
    conda:
        "../../envs/hybridrec.yaml"
    threads: 1
    resources:
        mem_mb=512,
    script:
        "../scripts/table4.py"
