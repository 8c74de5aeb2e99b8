"""Training on windows with the leading padding trimmed: same losses and gradients, same batches."""

from __future__ import annotations

import pytest
import torch

from hybridrec.evaluation.evaluate import last_hidden_states
from hybridrec.models import build_model
from hybridrec.models.base import SequentialRecommender
from hybridrec.training import trimming
from hybridrec.training.batches import Batch, Sequences, TrainingBatches
from hybridrec.training.loop import batch_loss, train_step
from hybridrec.training.trimming import length_groups, needed_widths, states_at_targets

NUM_ITEMS, MAX_LEN = 60, 20


def beauty_like_sequences(users: int = 120, seed: int = 0) -> Sequences:
    """Mostly short sequences (a few longer than the window), like Beauty's prefixes."""
    g = torch.Generator().manual_seed(seed)
    lengths = 2 + torch.distributions.Geometric(torch.tensor(0.15)).sample((users,)).long()
    lengths = lengths.clamp_max(3 * MAX_LEN)
    return Sequences.from_lists(
        [torch.randint(1, NUM_ITEMS + 1, (int(n),), generator=g).tolist() for n in lengths],
        NUM_ITEMS)


SEQS = beauty_like_sequences()


@pytest.fixture(autouse=True)
def small_group_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test batches are small: a lower price per group still splits them into several."""
    monkeypatch.setattr(trimming, "GROUP_COST", 64)


def first_batch(objective: str, negatives: bool, size: int = 96) -> Batch:
    batches = TrainingBatches(SEQS, objective, MAX_LEN, negatives=negatives)
    return next(batches.epoch(size, torch.Generator().manual_seed(3)))


def make(name: str, **overrides: object) -> SequentialRecommender:
    torch.manual_seed(0)
    if name == "fmlp":
        return build_model("fmlp", NUM_ITEMS, max_len=MAX_LEN, hidden_size=16, dropout=0.0)
    if name in ("mamba4rec", "m2rec"):
        if name == "m2rec":
            overrides = {"text_dim": 8, **overrides}
        model = build_model(name, NUM_ITEMS, max_len=MAX_LEN, hidden_size=16, d_state=4,
                            dropout=0.0, **overrides)
        if name == "m2rec" and model.config.uses_text:
            text = torch.randn(NUM_ITEMS + 1, 8)
            text[0] = 0
            model.set_item_text(text)
        return model
    return build_model(name, NUM_ITEMS, max_len=MAX_LEN, hidden_size=16, inner_size=32,
                       n_heads=2, dropout=0.0, attn_dropout=0.0, **overrides)


def widths_seen(model: SequentialRecommender) -> list[int]:
    """Window widths of every forward call, recorded by a pre-hook."""
    seen: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1]))
    return seen


def test_needed_widths_count_from_the_first_real_item() -> None:
    inputs = torch.tensor([[0, 0, 0, 4], [0, 5, 0, 6], [7, 8, 9, 1], [0, 0, 0, 0]])
    assert needed_widths(inputs).tolist() == [1, 3, 4, 4]


@pytest.mark.parametrize("cost", [0, 64, 2048, 10**9])
def test_length_groups_partition_the_batch_and_cover_every_real_item(cost: int) -> None:
    inputs = first_batch("prefix", False).inputs
    groups = length_groups(inputs, group_cost=cost)
    rows = torch.cat([g.rows for g in groups])
    assert sorted(rows.tolist()) == list(range(inputs.shape[0]))  # every row exactly once
    widths = needed_widths(inputs)
    for g in groups:
        assert int(widths[g.rows].max()) == g.width  # computed at the widest member's width
        assert not bool((inputs[g.rows, : MAX_LEN - g.width] != 0).any())  # only padding cut
    distinct = torch.unique(widths).numel()
    if cost == 0:
        assert len(groups) == distinct  # no price per group: no padding computed at all
    if cost == 10**9:
        assert len(groups) == 1 and groups[0].width == int(widths.max())
    assert [g.width for g in groups] == sorted({g.width for g in groups})


CASES = [("linrec", "prefix", "ce", {}), ("linrec", "causal", "bce", {"causal": True}),
         ("linrec", "prefix", "ce", {"norm": "paper"}), ("sasrec", "prefix", "ce", {}),
         ("sasrec", "causal", "bce", {}), ("mamba4rec", "prefix", "ce", {}),
         ("mamba4rec", "causal", "bce", {}), ("m2rec", "prefix", "ce", {}),
         ("m2rec", "causal", "ce", {"fft": False})]


@pytest.mark.parametrize(("name", "objective", "loss", "overrides"), CASES)
def test_trimmed_and_untrimmed_losses_and_gradients_agree(name: str, objective: str, loss: str,
                                                          overrides: dict[str, object]) -> None:
    model = make(name, **overrides).train()
    assert model.ignores_leading_padding
    batch = first_batch(objective, negatives=loss == "bce")
    seen = widths_seen(model)

    def loss_and_grads(trim: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        value = batch_loss(model, batch, loss, trim_padding=trim)
        value.backward()
        return value.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    full, full_grads = loss_and_grads(False)
    assert seen == [MAX_LEN]
    seen.clear()
    trimmed, trimmed_grads = loss_and_grads(True)
    assert len(seen) > 1 and max(seen) <= MAX_LEN and min(seen) < MAX_LEN / 2  # really trimmed
    torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-6)
    assert len(trimmed_grads) == len(full_grads)
    for a, b in zip(trimmed_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("name", "overrides"), [("linrec", {}), ("mamba4rec", {}),
                                                 ("m2rec", {}), ("fmlp", {})])
def test_evaluation_on_trimmed_windows_equals_the_full_windows(
        name: str, overrides: dict[str, object]) -> None:
    """Evaluation batches users by needed width and runs a model that ignores leading padding on
    its trimmed windows: the states at the last position are those of the full windows."""
    model = make(name, **overrides).eval()
    inputs = first_batch("prefix", negatives=False).inputs
    seen: list[int] = []
    last_hidden = model.last_hidden
    model.last_hidden = lambda seq: (seen.append(seq.shape[1]), last_hidden(seq))[1]
    states = last_hidden_states(model, inputs, batch_size=16)
    assert (min(seen) < MAX_LEN / 2) == model.ignores_leading_padding
    with torch.no_grad():
        expected = model(inputs)[:, -1]
    torch.testing.assert_close(states, expected, rtol=1e-5, atol=1e-5)


def test_prefix_states_come_back_in_batch_order() -> None:
    model = make("linrec").eval()
    batch = first_batch("prefix", negatives=True)
    with torch.no_grad():
        h, targets, negatives = states_at_targets(model, batch)
        expected = model(batch.inputs)[:, -1]
    torch.testing.assert_close(h, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(targets, batch.targets) and negatives is batch.negatives


@pytest.mark.parametrize("overrides", [{"mask_padding": False},
                                       {"mask_padding": False, "norm": "paper"}])
def test_linrec_depending_on_padding_is_never_trimmed(overrides: dict[str, object]) -> None:
    model = make("linrec", **overrides).eval()
    assert not model.ignores_leading_padding
    batch = first_batch("prefix", negatives=False)
    with torch.no_grad():  # trimming would change these outputs: the property is needed
        rows = batch.inputs[needed_widths(batch.inputs) <= 5]  # (b, N), real items in the last 5
        assert rows.shape[0] > 0
        assert not torch.allclose(model(rows[:, -5:])[:, -1], model(rows)[:, -1])
    seen = widths_seen(model)
    with torch.no_grad():
        batch_loss(model, batch, "ce")
    assert seen == [MAX_LEN]


def test_fmlp_is_never_trimmed() -> None:
    model = make("fmlp").train()
    assert not model.ignores_leading_padding
    seen = widths_seen(model)
    batch_loss(model, first_batch("prefix", negatives=True), "bce").backward()
    assert seen == [MAX_LEN]
def test_trimmed_training_does_not_depend_on_the_thread_count() -> None:
    """Length groups give many matmul shapes; every one must sum the same on 1, 2 and 4 threads."""
    def three_steps(threads: int) -> list[torch.Tensor]:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch.manual_seed(0)
            model = build_model("linrec", NUM_ITEMS, max_len=MAX_LEN, hidden_size=32,
                                inner_size=64, n_heads=4, dropout=0.2)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            batches = TrainingBatches(SEQS, "prefix", MAX_LEN)
            generator = torch.Generator().manual_seed(1)
            for batch, _ in zip(batches.epoch(256, generator), range(3), strict=False):
                train_step(model, optimizer, batch, loss="ce")
            return [p.detach().clone() for p in model.parameters()]
        finally:
            torch.set_num_threads(previous)

    one = three_steps(1)
    for threads in (2, 4):
        assert all(torch.equal(a, b) for a, b in zip(one, three_steps(threads), strict=True))
