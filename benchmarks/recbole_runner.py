"""RecBole's SASRec on an atomic dataset: timed epochs, then validation states (RecBole venv).

    python recbole_runner.py --data-path ATOMIC_ROOT --dataset NAME --out OUT_PREFIX
        [--epochs 3] [--batch-size 256] [--threads 2] [--seed 42] [--dropout 0.2]
        [--attn-dropout 0.2] [--heads 2] [--reuse-freed-memory SRC]

Started by ``benchmarks/recbole_side_by_side.py`` with the interpreter of a separate virtual
environment holding ``recbole==1.2.1`` (never hybridrec, whose dependencies it does not have).
The atomic file's tokens are hybridrec's internal ids, so everything written back is in those ids:

- ``OUT_PREFIX.json``: per epoch the wall and process-CPU seconds of ``Trainer._train_epoch``
  and the mean batch loss; the number of training samples; RecBole's own full-sort validation
  NDCG@10 / Hit@10 (its sequential full ranking ranks history items too); versions.
- ``OUT_PREFIX.npz``: for every validation user (hybridrec user id) the model's final hidden
  state (the one ``full_sort_predict`` multiplies with the item table), the target, the input
  window left-padded to ``MAX_ITEM_LIST_LENGTH``, and the item embedding table in hybridrec's
  item order (row 0 = RecBole's padding row). The caller ranks with hybridrec's own code, so
  both sides are scored by the same function.

RecBole 1.2.1 on NumPy 2: its config module still reads ``np.float_``, ``np.complex_`` and
``np.unicode_`` (removed in NumPy 2); they are aliased here before it is imported. No RecBole
checkpoint is loaded (no ``fit``, no ``load_best_model``), so its ``torch.load`` calls, which
need ``weights_only=False`` on torch >= 2.6, are never reached.

``--reuse-freed-memory SRC`` applies hybridrec's glibc heap setting
(``hybridrec.cpu.reuse_freed_memory``, standard library only, imported from the checkout's
``src``), so that RecBole runs with the same CPU runtime as our training when the caller also
passes our OpenMP and MKL environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

for _alias, _target in (("float_", np.float64), ("complex_", np.complex128),
                        ("unicode_", np.str_)):
    if not hasattr(np, _alias):
        setattr(np, _alias, _target)

import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_logger, init_seed  # noqa: E402


def recbole_config(args: argparse.Namespace) -> dict[str, Any]:
    """SASRec with the side-by-side's hyperparameters; leave-one-out in time order, full sort."""
    return {
        "data_path": str(args.data_path), "dataset": args.dataset,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user",
                      "mode": "full"},
        "train_neg_sample_args": None, "loss_type": "CE",
        "n_layers": args.layers, "n_heads": args.heads, "hidden_size": args.hidden,
        "inner_size": args.inner, "hidden_dropout_prob": args.dropout,
        "attn_dropout_prob": args.attn_dropout, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "initializer_range": 0.02, "learning_rate": args.lr, "train_batch_size": args.batch_size,
        "eval_batch_size": 1024, "epochs": args.epochs, "seed": args.seed,
        "reproducibility": True, "use_gpu": False, "device": "cpu", "worker": 0,
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10",
        "checkpoint_dir": "saved", "show_progress": False,
    }


def validation_states(model: SASRec, dataset: Any, loader: Any, max_len: int
                      ) -> dict[str, np.ndarray]:
    """Hidden states, targets and left-padded windows of the validation users, in hybridrec ids."""
    uid, iid = dataset.uid_field, dataset.iid_field
    item_token = np.array([0, *map(int, dataset.field2id_token[iid][1:])])  # RecBole id -> ours
    users, hidden, targets, windows = [], [], [], []
    model.eval()
    with torch.no_grad():
        for interaction, _, _, _ in loader:
            seq, length = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
            hidden.append(model.forward(seq, length).numpy())  # (B, d)
            users.append(dataset.id2token(uid, interaction[uid].numpy()).astype(np.int64))
            targets.append(item_token[interaction[iid].numpy()])
            right = item_token[seq.numpy()]  # (B, N) right-padded
            shift = max_len - length.numpy()  # (B,)
            cols = (np.arange(max_len)[None, :] - shift[:, None]) % max_len
            windows.append(np.take_along_axis(right, cols, axis=1))  # (B, N) left-padded
    order = np.argsort(np.concatenate(users))
    weights = model.item_embedding.weight.detach().numpy()  # (RecBole items, d)
    table = np.zeros((int(item_token.max()) + 1, weights.shape[1]), dtype=np.float32)
    table[item_token] = weights
    return {"users": np.concatenate(users)[order], "hidden": np.concatenate(hidden)[order],
            "targets": np.concatenate(targets)[order], "inputs": np.concatenate(windows)[order],
            "item_embeddings": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", type=Path, required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--inner", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--attn-dropout", type=float, default=0.2)
    parser.add_argument("--reuse-freed-memory", type=Path, metavar="SRC",
                        help="hybridrec's src folder: apply its glibc heap setting")
    args = parser.parse_args()
    heap_reuse = False
    if args.reuse_freed_memory is not None:
        sys.path.insert(0, str(args.reuse_freed_memory))
        from hybridrec.cpu import reuse_freed_memory

        heap_reuse = reuse_freed_memory()

    config = Config(model="SASRec", dataset=args.dataset, config_dict=recbole_config(args))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    torch.set_num_threads(args.threads)
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)

    epochs = []
    for epoch in range(args.epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        total = trainer._train_epoch(train_data, epoch)
        epochs.append({"epoch": epoch + 1, "seconds": time.perf_counter() - wall,
                       "cpu_seconds": time.process_time() - cpu,
                       "loss": total / len(train_data)})
        print(f"recbole epoch {epoch + 1}: {epochs[-1]['seconds']:.1f} s, "
              f"loss {epochs[-1]['loss']:.4f}", flush=True)
    own = trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
    states: dict[str, Any] = validation_states(model, valid_data.dataset, valid_data,
                                               args.max_len)
    np.savez(args.out.with_suffix(".npz"), **states)
    import recbole

    report = {
        "epochs": epochs, "train_samples": len(train_data.dataset),
        "valid_users": len(valid_data.dataset),
        "recbole_full_sort": {k: float(v) for k, v in own.items()},
        "threads": torch.get_num_threads(), "versions": {
            "recbole": recbole.__version__, "torch": torch.__version__,
            "numpy": np.__version__},
        "runtime": {**{k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "MKL_CBWR")},
                    "heap reuse": heap_reuse},
    }
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
