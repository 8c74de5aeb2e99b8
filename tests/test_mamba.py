"""Mamba4Rec and M2Rec: the scan, causality, padding, the switches, leakage, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hybridrec.errors import ConfigError
from hybridrec.models import MODELS, build_model
from hybridrec.models.base import SequentialRecommender
from hybridrec.models.m2rec import SWITCHES, M2Rec
from hybridrec.models.mamba import (
    CausalDepthwiseConv,
    SelectiveSSM,
    linear_scan,
    linear_scan_reference,
)
from hybridrec.training.batches import Sequences, TrainingBatches
from hybridrec.training.settings import resolve_settings

NUM_ITEMS = 40
N = 12
SMALL: dict[str, object] = dict(max_len=N, hidden_size=16, d_state=8, n_layers=2)
TEXT_DIM = 6
ALL_OFF: dict[str, object] = {switch: False for switch in SWITCHES}
CONFIGS: dict[str, tuple[str, dict[str, object]]] = {
    "mamba4rec": ("mamba4rec", SMALL),
    "m2rec": ("m2rec", dict(SMALL, text_dim=TEXT_DIM)),
    "m2rec-causal": ("m2rec", dict(SMALL, text_dim=TEXT_DIM, fft=False)),
    "m2rec-off": ("m2rec", dict(SMALL, **ALL_OFF)),
}


def item_text(num_items: int = NUM_ITEMS, dim: int = TEXT_DIM, seed: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(num_items + 1, dim, generator=g)
    text[0] = 0
    return text


def make(key: str, **overrides: object) -> SequentialRecommender:
    torch.manual_seed(0)
    name, config = CONFIGS[key]
    model = build_model(name, NUM_ITEMS, **{**config, **overrides})
    if isinstance(model, M2Rec):
        model.set_item_text(item_text())
    return model.eval()


def left_padded(lengths: list[int], n: int = N, seed: int = 1) -> torch.Tensor:
    """(B, n) item ids in 1..NUM_ITEMS, row b left-padded to keep its last lengths[b] items."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, NUM_ITEMS + 1, (len(lengths), n), generator=g)
    for b, length in enumerate(lengths):
        seq[b, : n - length] = 0
    return seq


def use_scan(model: torch.nn.Module, scan: str) -> None:
    for module in model.modules():
        if isinstance(module, SelectiveSSM):
            module.scan = scan


def randomize(model: torch.nn.Module, seed: int = 3) -> None:
    """Move every weight well away from its init (identity filters, zero biases, unit norms)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                continue  # keep A = -exp(A_log) in a sensible range
            p.add_(torch.randn(p.shape, generator=g) * 0.3)


# ---------------------------------------------------------------- the scan


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("n", [1, 2, 7, 16, 50])
def test_fast_scans_equal_the_reference_scan_in_values_and_gradients(n: int,
                                                                     parallel: bool) -> None:
    g = torch.Generator().manual_seed(n)
    a = torch.rand(3, n, 4, 5, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(3, n, 4, 5, generator=g, dtype=torch.float64).requires_grad_()
    weight = torch.randn(3, n, 4, 5, generator=g, dtype=torch.float64)
    fast = linear_scan(a, b, parallel)
    reference = linear_scan_reference(a, b)
    torch.testing.assert_close(fast, reference)
    torch.testing.assert_close(reference[:, 0], b[:, 0])  # and the reference is the recurrence
    torch.testing.assert_close(reference[:, 1:], a[:, 1:] * reference[:, :-1] + b[:, 1:])
    grads_fast = torch.autograd.grad((fast * weight).sum(), (a, b))
    grads_reference = torch.autograd.grad((reference * weight).sum(), (a, b))
    for got, expected in zip(grads_fast, grads_reference, strict=True):
        torch.testing.assert_close(got, expected)
    assert torch.autograd.gradcheck(lambda x, y: linear_scan(x, y, parallel),
                                    (a[:1, :, :1, :2], b[:1, :, :1, :2]))


@pytest.mark.parametrize("scan", ["fused", "sequential", "parallel"])
@pytest.mark.parametrize("key", list(CONFIGS))
def test_model_with_fast_scan_equals_model_with_reference_scan(key: str, scan: str) -> None:
    model = make(key).double()
    randomize(model)
    seq = left_padded([12, 6, 1])
    target = torch.tensor([3, 5, 7])

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        hidden = model(seq)
        F.cross_entropy(model.logits(hidden[:, -1]), target).backward()
        return hidden, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    use_scan(model, scan)
    fast, fast_grads = run()
    use_scan(model, "reference")
    reference, reference_grads = run()
    torch.testing.assert_close(fast, reference)
    for got, expected in zip(fast_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, expected)


def test_causal_conv_is_mambas_padded_conv1d() -> None:
    torch.manual_seed(0)
    conv = CausalDepthwiseConv(6, 4)
    x = torch.randn(2, 9, 6)
    weight = conv.weight.unsqueeze(1)  # (Di, 1, K), nn.Conv1d's depthwise layout
    expected = F.conv1d(x.transpose(1, 2), weight, conv.bias, padding=3, groups=6)[..., :9]
    torch.testing.assert_close(conv(x), expected.transpose(1, 2))


# ---------------------------------------------------------------- shapes, registry, config


@pytest.mark.parametrize("key", list(CONFIGS))
def test_shapes(key: str) -> None:
    model = make(key)
    seq = left_padded([12, 5, 1])
    hidden = model(seq)
    assert hidden.shape == (3, N, 16)
    assert model.last_hidden(seq).shape == (3, 16)
    assert model.logits(hidden).shape == (3, N, NUM_ITEMS + 1)
    assert torch.equal(model.item_embeddings.weight[0], torch.zeros(16))
    assert torch.isfinite(hidden).all()


def test_defaults_are_the_papers() -> None:
    config = build_model("mamba4rec", NUM_ITEMS).config
    assert (config.hidden_size, config.n_layers, config.dropout, config.d_state, config.d_conv,
            config.expand, config.ffn_size) == (64, 1, 0.2, 32, 4, 2, 256)
    m2rec = build_model("m2rec", NUM_ITEMS).config
    assert all(getattr(m2rec, switch) for switch in SWITCHES)
    assert (m2rec.text_dim, m2rec.conv_kernels) == (384, (3, 5, 7))
    assert not build_model("mamba4rec", NUM_ITEMS).needs_item_text
    assert MODELS["m2rec"].needs_item_text and not MODELS["linrec"].needs_item_text


def test_no_position_embedding() -> None:
    names = dict(make("mamba4rec").named_parameters())
    assert not any("position" in name for name in names)


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(fft="yes"), "fft must be a bool"),
    (dict(text_dim=-1), "text_dim"),
    (dict(conv_kernels=[]), "conv_kernels"),
    (dict(conv_kernels=[3, 0]), "conv_kernels"),
    (dict(d_state=0), "d_state"),
])
def test_config_validation_names_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=rf"model 'm2rec'.*{message}"):
        build_model("m2rec", NUM_ITEMS, **overrides)


def test_conv_kernels_from_yaml_list_become_a_tuple() -> None:
    assert build_model("m2rec", NUM_ITEMS, conv_kernels=[2, 4]).config.conv_kernels == (2, 4)


# ---------------------------------------------------------------- causality and padding


@pytest.mark.parametrize("key", ["mamba4rec", "m2rec-causal", "m2rec-off"])
def test_future_items_do_not_change_earlier_outputs(key: str) -> None:
    model = make(key)
    randomize(model)
    seq = left_padded([12, 8])
    changed = seq.clone()
    changed[:, 7] = changed[:, 7] % NUM_ITEMS + 1  # a different real item at position 7
    before, after = model(seq), model(changed)
    torch.testing.assert_close(after[:, :7], before[:, :7])
    assert not torch.allclose(after[:, 7:], before[:, 7:])


def test_m2rec_with_fft_mixes_the_whole_window() -> None:
    """Why m2rec (fft on) must not train with the causal objective: earlier positions see
    later items, i.e. the targets of the causal objective."""
    model = make("m2rec")
    randomize(model)
    seq = left_padded([12])
    changed = seq.clone()
    changed[:, 7] = changed[:, 7] % NUM_ITEMS + 1
    assert not torch.allclose(model(changed)[:, :7], model(seq)[:, :7])


@pytest.mark.parametrize("key", ["mamba4rec", "m2rec-causal"])
def test_leading_padding_does_not_change_outputs(key: str) -> None:
    """Padding is masked in the conv and the scan, so a window that only drops leading padding
    gives the same hidden states at every real position."""
    model = make(key)
    randomize(model)
    seq = left_padded([7, 5, 3])  # at least 5 leading zeros in every row
    torch.testing.assert_close(model(seq[:, 5:]), model(seq)[:, 5:])


@pytest.mark.parametrize("key", list(CONFIGS))
def test_all_padding_row_stays_finite(key: str) -> None:
    model = make(key).train()
    hidden = model(left_padded([12, 0]))
    hidden.sum().backward()
    assert torch.isfinite(hidden).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_a_trimmed_window_filters_over_the_full_window() -> None:
    """With fft on, a window shorter than max_len is zero-padded back for every FFT: its outputs
    are those of the full window at the same positions; a longer window is refused."""
    model = make("m2rec")
    randomize(model)
    full = left_padded([3, 4, 2])  # (3, 12), every real item in the last 4 columns
    torch.testing.assert_close(model(full[:, -4:]), model(full)[:, -4:], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at most max_len=12"):
        model(left_padded([5], n=13))
    assert make("m2rec-causal")(left_padded([5], n=8)).shape == (1, 8, 16)


def test_one_layer_drops_the_residual_as_the_official_code_unless_asked() -> None:
    """Official Mamba4Rec: LayerNorm(dropout(mamba(x))) with one layer; the switch keeps x +."""
    seq = left_padded([4, 9, 2])
    official = make("mamba4rec", n_layers=1)
    kept = build_model("mamba4rec", NUM_ITEMS, **{**CONFIGS["mamba4rec"][1], "n_layers": 1,
                                                   "single_layer_residual": True}).eval()
    kept.load_state_dict(official.state_dict())
    layer = official.layers[0]
    assert not layer.residual and kept.layers[0].residual
    x = official.embedding(seq)
    keep = seq != 0
    expected = layer.feed_forward(layer.norm(layer.mixer(x, keep)))
    torch.testing.assert_close(official.encode(x, keep), expected)
    assert not torch.allclose(official(seq), kept(seq))


# ---------------------------------------------------------------- M2Rec's switches


def test_m2rec_with_every_switch_off_is_exactly_mamba4rec() -> None:
    base, off = make("mamba4rec"), make("m2rec-off")
    shapes = {name: p.shape for name, p in base.state_dict().items()}
    assert {name: p.shape for name, p in off.state_dict().items()} == shapes
    # same seed, same parameters drawn in the same order
    assert all(torch.equal(p, off.state_dict()[name]) for name, p in base.state_dict().items())
    randomize(base)
    off.load_state_dict(base.state_dict())  # strict: the same names
    seq = left_padded([12, 7, 1])
    assert torch.equal(off(seq), base(seq))
    base.train(), off.train()
    torch.manual_seed(9)
    expected = base(seq)  # dropout draws in the same order
    torch.manual_seed(9)
    assert torch.equal(off(seq), expected)


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_changes_the_output(switch: str) -> None:
    full = make("m2rec")
    randomize(full)
    ablated = make("m2rec", **{switch: False})
    own = ablated.state_dict()
    shared = {k: v for k, v in full.state_dict().items() if k in own and v.shape == own[k].shape}
    ablated.load_state_dict(shared, strict=False)  # every part they share
    assert set(full.state_dict()) - set(own), f"{switch}=False removed no parameter"
    seq = left_padded([12, 9, 4])
    assert not torch.allclose(ablated.last_hidden(seq), full.last_hidden(seq), atol=1e-3)


def test_text_dim_zero_turns_text_off() -> None:
    a = build_model("m2rec", NUM_ITEMS, **SMALL, text_dim=0)
    b = build_model("m2rec", NUM_ITEMS, **SMALL, text=False)
    assert set(a.state_dict()) == set(b.state_dict())
    assert "item_text" not in a.state_dict()


# ---------------------------------------------------------------- item text


def test_item_text_is_a_frozen_buffer_outside_the_state_dict() -> None:
    """The text changes the output but is not a weight: a state dict leaves it out, and a model
    rebuilt from one needs the same text set again to give the same outputs."""
    model = make("m2rec")
    randomize(model)
    assert "item_text" in dict(model.named_buffers())
    assert all("item_text" not in name for name, _ in model.named_parameters())
    assert all("item_text" not in name for name in model.state_dict())
    seq = left_padded([12, 9])
    before = model(seq)
    model.set_item_text(item_text(seed=6))
    assert not torch.allclose(model(seq), before)
    reloaded = build_model("m2rec", NUM_ITEMS, **CONFIGS["m2rec"][1]).eval()
    reloaded.load_state_dict(model.state_dict())  # strict: every weight, no text
    assert not torch.equal(reloaded(seq), model(seq))
    reloaded.set_item_text(item_text(seed=6))
    assert torch.equal(reloaded(seq), model(seq))


def test_set_item_text_checks_the_matrix() -> None:
    model = make("m2rec")
    assert isinstance(model, M2Rec)
    with pytest.raises(ValueError, match=r"shape \(41, 5\), expected \(41, 6\)"):
        model.set_item_text(torch.zeros(NUM_ITEMS + 1, TEXT_DIM - 1))
    with pytest.raises(ValueError, match=r"shape \(40, 6\)"):
        model.set_item_text(torch.zeros(NUM_ITEMS, TEXT_DIM))
    bad = item_text()
    bad[0, 1] = 1.0
    with pytest.raises(ValueError, match="row 0"):
        model.set_item_text(bad)
    bad = item_text()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        model.set_item_text(bad)


# ---------------------------------------------------------------- leakage and the objective


def test_causal_objective_is_refused_for_m2rec_with_fft_only() -> None:
    with pytest.raises(ConfigError, match=r"models\.m2rec\.objective.*prefix"):
        resolve_settings("m2rec", {"objective": "causal"}, "demo")
    resolve_settings("m2rec", {"objective": "causal", "fft": False}, "demo")
    resolve_settings("mamba4rec", {"objective": "causal"}, "demo")
    assert MODELS["mamba4rec"].always_causal and not MODELS["m2rec"].always_causal


def test_prefix_objective_never_puts_the_target_in_the_input_window() -> None:
    """Every id occurs once in the data, so it names its user and position: the input window of
    every prefix sample holds exactly the items before its target, never the target."""
    ids = torch.randperm(100, generator=torch.Generator().manual_seed(0)).add(1).tolist()
    lists = [ids[:3], ids[3:12], ids[12:32], ids[32:62]]
    batches = TrainingBatches(Sequences.from_lists(lists, 100), "prefix", N)
    seen = 0
    for batch in batches.epoch(16, torch.Generator().manual_seed(1)):
        assert not (batch.inputs == batch.targets.unsqueeze(1)).any()
        for inputs, target in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
            sequence = next(s for s in lists if target in s)
            t = sequence.index(target)
            real = [i for i in inputs if i != 0]
            assert real == sequence[max(0, t - N):t]  # strictly the items before the target
        seen += len(batch)
    assert seen == sum(len(s) - 1 for s in lists)


# ---------------------------------------------------------------- gradients and training


@pytest.mark.parametrize("key", list(CONFIGS))
def test_gradients_reach_every_parameter(key: str) -> None:
    model = make(key).train()
    seq = left_padded([12, 7, 1, 12])
    loss = F.cross_entropy(model.logits(model.last_hidden(seq)), torch.tensor([3, 5, 7, 9]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def toy_batch(generator: torch.Generator, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs of consecutive ids: the next item is the last one plus one (mod NUM_ITEMS)."""
    start = torch.randint(0, NUM_ITEMS, (batch, 1), generator=generator)
    window = (start + torch.arange(N + 1)) % NUM_ITEMS + 1  # (B, N + 1)
    return window[:, :-1], window[:, -1]


@pytest.mark.parametrize("key", ["mamba4rec", "m2rec"])
def test_a_few_training_steps_reduce_the_loss_on_a_toy_task(key: str) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only wait for each other
    try:
        losses = toy_training_losses(make(key).train())
    finally:
        torch.set_num_threads(previous)
    assert losses[0] > 3.0  # about log(41) at init
    assert sum(losses[-5:]) / 5 < 0.75 * losses[0]


def toy_training_losses(model: SequentialRecommender) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(20):
        inputs, targets = toy_batch(g)
        loss = F.cross_entropy(model.logits(model.last_hidden(inputs)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def gradients(name: str, threads: int) -> dict[str, torch.Tensor]:
    """Parameter gradients of one training step at ``threads`` CPU threads (dropout on)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = build_model(name, 200, hidden_size=16, d_state=8, max_len=20,
                            **(dict(text_dim=TEXT_DIM) if name == "m2rec" else {}))
        if isinstance(model, M2Rec):
            model.set_item_text(item_text(200))
        batches = torch.Generator().manual_seed(1)
        inputs = torch.randint(1, 201, (128, 20), generator=batches)
        inputs[:32, :10] = 0  # some left padding
        targets = torch.randint(1, 201, (128,), generator=batches)
        F.cross_entropy(model.train().logits(model.last_hidden(inputs)), targets).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()
                if p.grad is not None}
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("name", ["mamba4rec", "m2rec"])
def test_gradients_are_deterministic_and_the_scan_is_thread_invariant(name: str) -> None:
    """Same seed, same bits. Across thread counts, every sum written here (scan, convolution,
    A_log, D, filters, norms) is bit-identical; nn.Linear weight gradients are not compared
    bitwise: torch's CPU GEMM splits their B*N reduction by thread on this machine (the same
    holds for LinRec and FMLP-Rec at these shapes)."""
    one = gradients(name, threads=1)
    again = gradients(name, threads=1)
    assert all(torch.equal(one[k], again[k]) for k in one)
    two = gradients(name, threads=2)
    model = build_model(name, 200, hidden_size=16, d_state=8, max_len=20)
    linear = {f"{k}.weight" for k, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert all(torch.equal(one[k], two[k]) for k in one if k not in linear), [
        k for k in one if k not in linear and not torch.equal(one[k], two[k])]
    for k in linear:
        torch.testing.assert_close(one[k], two[k], rtol=1e-5, atol=1e-9)


def test_models_follow_the_input_device_and_dtype() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for key in CONFIGS:
        model = make(key).to(device=device, dtype=torch.float64)
        hidden = model(left_padded([12, 3]).to(device))
        assert hidden.device.type == device and hidden.dtype == torch.float64
