"""The hybrid stage's jobs: stored aligned lists round-trip exactly; a gate with nothing to
learn stops with one message; the paper's protocols are known for every fused branch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.hybrid.align import PAD, AlignedLists
from hybridrec.hybrid.aligned_file import aligned_protocols, read_aligned, write_aligned


def test_aligned_lists_round_trip_through_parquet(tmp_path):
    rng = np.random.default_rng(0)
    vocabulary = np.array([3, 8, 15, 21, 40, 77])
    lists = rng.permutation(np.tile(np.arange(6), (5, 2, 1)).reshape(-1, 6), axis=1)
    lists = lists.reshape(5, 2, 6)[..., :4].copy()
    lists[1, 0, 2:] = PAD  # a short list
    scores = np.where(lists == PAD, np.nan, -rng.random(lists.shape))
    aligned = AlignedLists(("linrec", "fmlp"), np.array([10, 11, 12, 13, 14]), vocabulary,
                           lists, scores, target=np.array([0, 1, 2, 3, 5]))
    write_aligned(aligned, {"linrec": "pop100", "fmlp": "uniform99"}, tmp_path / "a.parquet")
    back = read_aligned(tmp_path / "a.parquet", ["linrec", "fmlp"])
    assert aligned_protocols(tmp_path / "a.parquet") == {"linrec": "pop100", "fmlp": "uniform99"}
    # ids are re-indexed over the items that occur, so compare in original ids
    np.testing.assert_array_equal(back.vocabulary[back.target], vocabulary[aligned.target])
    np.testing.assert_array_equal(np.where(back.lists == PAD, -1, back.vocabulary[back.lists]),
                                  np.where(lists == PAD, -1, vocabulary[lists]))
    np.testing.assert_array_equal(back.scores, scores)
    np.testing.assert_array_equal(back.users, aligned.users)


def test_aligned_lists_read_to_a_depth_are_the_lists_heads(tmp_path):
    rng = np.random.default_rng(1)
    vocabulary = np.arange(100, 130)
    lists = np.stack([rng.permutation(30)[:12] for _ in range(8)]).reshape(4, 2, 12)
    lists[2, 1, 3:] = PAD  # shorter than the depth
    lists[0, 0, 7:] = PAD
    scores = np.where(lists == PAD, np.nan, -rng.random(lists.shape))
    aligned = AlignedLists(("linrec", "fmlp"), np.arange(4), vocabulary, lists, scores,
                           target=np.array([29, 0, 5, 7]))
    write_aligned(aligned, {"linrec": "full", "fmlp": "full"}, tmp_path / "a.parquet")
    head = read_aligned(tmp_path / "a.parquet", ["linrec", "fmlp"], depth=5)
    assert head.k == 5
    np.testing.assert_array_equal(np.where(head.lists == PAD, -1, head.vocabulary[head.lists]),
                                  np.where(lists[..., :5] == PAD, -1, vocabulary[lists[..., :5]]))
    np.testing.assert_array_equal(head.scores, scores[..., :5])
    np.testing.assert_array_equal(head.vocabulary[head.target], vocabulary[aligned.target])


def test_a_branch_that_never_wins_stops_the_gate_with_one_clear_message(tmp_path):
    from hybridrec.errors import HybridrecError
    from hybridrec.hybrid.features import FEATURES
    from hybridrec.jobs.shap import run_shap

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((50, len(FEATURES))), columns=list(FEATURES))
    frame["eligible"] = True
    frame["best_branch"] = 1  # fmlp is better for every user: linrec never wins
    features = tmp_path / "valid.parquet"
    frame.to_parquet(features)
    summary = tmp_path / "shap.json"
    with pytest.raises(HybridrecError) as error:
        run_shap(features, ["linrec", "fmlp"], 3, 0, summary, tmp_path / "fig.png", "t")
    message = str(error.value)
    assert str(features) in message
    assert "fmlp is the better branch for every one of the 50 users" in message
    assert not summary.exists() and not (tmp_path / "fig.png").exists()


def test_the_paper_protocols_need_branches_whose_paper_protocol_is_known():
    import yaml

    from hybridrec.config import check_config
    from hybridrec.errors import ConfigError

    config = yaml.safe_load((Path(__file__).parents[1] / "config/config.yaml").read_text())
    config["hybrid"]["protocols"] = ["full", "paper"]
    check_config(config)  # linrec (pop100) and fmlp (uniform99)
    config["models"]["mine"] = {}
    config["hybrid"]["branches"] = ["linrec", "mine"]
    with pytest.raises(ConfigError, match=r"hybrid.protocols\[1\]: 'paper' .* not for \['mine'\]"):
        check_config(config)
