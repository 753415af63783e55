"""Defenses: transforms equal ART's, BPDA/EOT gradients, adaptive beats naive on JPEG, PGD-AT, contained failures."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_raw
from tinyplugin import tiny_blobs
from torch import nn

from benchmark.attacking import torch_attacks
from benchmark.attacking.adaptive import TransformedModel, bpda
from benchmark.attacking.attack_call import call_attack
from benchmark.entry_api import AttackContext, Defense
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import read_attack, read_data, read_deployed
from benchmark.execution.matrix import run
from benchmark.execution.store import Store
from benchmark.metrics import attack_outcome
from benchmark.registry import get_component, get_registry, register_defense
from benchmark.training.inference import predict_proba

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """Tiny models run many times faster on one thread than on two contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(n: int = 4, side: int = 20, seed: int = 0) -> torch.Tensor:
    x = torch.rand(n, 1, side, side + 3, generator=torch.Generator().manual_seed(seed))
    x[0, 0, :6, :6] = 0.5  # flat patch: ties in the median window
    x[1, 0, 0, :] = 1.0
    return x


def _cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                         nn.Flatten(), nn.Linear(16, 2))


def _art(name: str, options: dict) -> object:
    from art.defences import preprocessor as p

    if name == "jpeg":
        return p.JpegCompression(clip_values=(0.0, 1.0), quality=options["quality"], channels_first=True)
    if name == "spatial-smoothing":
        return p.SpatialSmoothing(window_size=options["window"], channels_first=True, clip_values=(0.0, 1.0))
    return p.FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=options["bit_depth"])


@pytest.mark.parametrize("name,options", [
    ("jpeg", {"quality": 10}), ("jpeg", {"quality": 75}), ("jpeg", {"quality": 95}),
    ("spatial-smoothing", {"window": 2}), ("spatial-smoothing", {"window": 3}),
    ("spatial-smoothing", {"window": 4}), ("spatial-smoothing", {"window": 5}),
    ("feature-squeezing", {"bit_depth": 1}), ("feature-squeezing", {"bit_depth": 4}),
    ("feature-squeezing", {"bit_depth": 8}), ("feature-squeezing", {"bit_depth": 12}),
])
def test_transform_equals_art_preprocessor(name: str, options: dict) -> None:
    x = _batch()
    defense = get_component("defenses", name).obj(options)
    ours = defense.transform()(x)
    expected, _ = _art(name, options)(x.numpy())
    assert ours.shape == x.shape and ours.dtype == torch.float32
    np.testing.assert_array_equal(ours.numpy(), np.asarray(expected, dtype=np.float32))
    assert defense.differentiable is False
    deployed = defense.wrap(nn.Identity())
    np.testing.assert_array_equal(deployed(x).numpy(), ours.numpy())  # the deployed model sees exactly that


def test_jpeg_describes_its_8_bit_quantisation() -> None:
    info = get_component("defenses", "jpeg").obj({}).describe()
    assert "floor(255 * x) / 255" in info["quantisation"] and info["options"] == {"quality": 75, "apply_fit": True}
    assert info["differentiable"] is False and info["attacked_with"].startswith("BPDA")


def test_defense_options_are_checked() -> None:
    with pytest.raises(BenchmarkError, match=r"defenses\.jpeg\.options\.qualty: unknown option; did you mean "
                                             r"'quality'\?"):
        get_component("defenses", "jpeg").obj({"qualty": 50})
    with pytest.raises(BenchmarkError, match=r"defenses\.pgd-at\.options\.fraction: must be <= 1, got 2"):
        get_component("defenses", "pgd-at").obj({"fraction": 2})
    assert get_component("defenses", "pgd-at").obj({"eps": "4/255"}).settings["eps"] == pytest.approx(4 / 255)


def test_bpda_passes_the_gradient_straight_through_and_naive_gives_zero() -> None:
    torch.manual_seed(0)
    model, x = _cnn().eval(), _batch()
    y = torch.tensor([0, 1, 0, 1])
    squeeze = get_component("defenses", "feature-squeezing").obj({"bit_depth": 3})
    # BPDA: the gradient w.r.t. x is the model's gradient at the transformed point
    at_transformed = torch_attacks.loss_gradient(model)(squeeze.transform()(x), y)
    through = torch_attacks.loss_gradient(squeeze.wrap(model))(x, y)
    torch.testing.assert_close(through, at_transformed)
    assert through.abs().sum() > 0
    assert torch.count_nonzero(torch_attacks.loss_gradient(squeeze.wrap(model, naive=True))(x, y)) == 0
    xr = x.clone().requires_grad_(True)  # d/dx round(x)^2 through BPDA: 2 * round(x) * identity
    torch.testing.assert_close(torch.autograd.grad(bpda(torch.round, xr).pow(2).sum(), xr)[0], 2 * x.round())


def test_eot_averages_random_draws_only_while_a_gradient_is_taken() -> None:
    calls = []

    def noisy(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return (x + 0.05 * torch.randn_like(x)).clamp(0, 1)

    model = nn.Sequential(nn.Flatten(), nn.Linear(20 * 23, 2))
    eot = TransformedModel(model, noisy, random=True, samples=8)
    x, y = _batch(), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        eot(x)
    assert len(calls) == 1  # deployment: one draw per prediction
    torch.manual_seed(1)
    grad = torch_attacks.loss_gradient(eot)(x, y)
    assert len(calls) == 9
    torch.manual_seed(1)  # the same 8 draws by hand: the gradient of the loss of the mean logits
    xr = x.clone().requires_grad_(True)
    logits = torch.stack([model(xr + (noisy(x) - x)) for _ in range(8)]).mean(0)
    torch.testing.assert_close(grad, torch.autograd.grad(F.cross_entropy(logits, y), xr)[0])
    assert TransformedModel(model, noisy, samples=8).samples == 1  # deterministic: one draw is all there is


def test_pgd_at_training_batches_are_adversarial_and_within_eps() -> None:
    torch.manual_seed(0)
    model = _cnn().train()
    x, y = _batch(8, 32), torch.tensor([0, 1] * 4)
    defense = get_component("defenses", "pgd-at").obj({"eps": "8/255", "steps": 5, "fraction": 0.5})
    grads_before = [p.grad for p in model.parameters()]
    x_at, y_at = defense.training_batch(model, x, y, step=0)
    assert model.training and all(m.training for m in model.modules())  # back in train mode
    assert [p.grad for p in model.parameters()] == grads_before and all(p.requires_grad for p in model.parameters())
    assert torch.equal(y_at, y) and torch.equal(x_at[4:], x[4:])  # half of the batch, the rest untouched
    delta = (x_at[:4] - x[:4]).abs()
    assert 0 < float(delta.max()) <= 8 / 255 + 1e-6 and float(x_at.min()) >= 0 and float(x_at.max()) <= 1
    model.eval()
    with torch.no_grad():
        assert F.cross_entropy(model(x_at[:4]), y[:4]) > F.cross_entropy(model(x[:4]), y[:4])
    assert defense.claims == ("linf",) and defense.differentiable


def test_pgd_at_raises_robust_accuracy_over_no_defense() -> None:
    data = tiny_blobs(SimpleNamespace(options={"count": 192}, image_size=32, seed=0), Path("."))
    x, y = torch.as_tensor(data.images), torch.as_tensor(data.labels)
    eps, robust = 16 / 255, {}
    for name, options in [("none", {}), ("pgd-at", {"eps": eps})]:
        torch.manual_seed(0)
        model, defense = _cnn(), get_component("defenses", name).obj(options)
        optimizer, gen = torch.optim.Adam(model.parameters(), 1e-2), torch.Generator().manual_seed(0)
        for step in range(80):  # the engine's loop, in small: the defense changes each batch, then one SGD step
            i = torch.randint(0, 128, (32,), generator=gen)
            xb, yb = defense.training_batch(model, x[i], y[i], step)
            model.train()
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        adv = torch_attacks.pgd(model, x[128:], y[128:], eps, steps=10, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert float((model(x[128:]).argmax(1) == y[128:]).float().mean()) >= 0.95
            robust[name] = float((model(adv).argmax(1) == y[128:]).float().mean())
    print(f"PGD-10 @16/255 robust accuracy: none {robust['none']:.3f}, pgd-at {robust['pgd-at']:.3f}")
    assert robust["pgd-at"] >= robust["none"] + 0.3


# --- through the runner: adaptive vs naive on JPEG, and defenses that break ---------------------------------------

class RaisingDefense(Defense):
    """A defense whose training step always raises."""

    def training_batch(self, model, x, y, step):
        raise RuntimeError("this defense is broken on purpose")


class WrongShapeDefense(Defense):
    """A defense that crops its training batches."""

    def training_batch(self, model, x, y, step):
        return x[:, :, :-1], y


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One tiny run: none, jpeg and two broken defenses under PGD at 8/255 on tiny-blobs."""
    register_defense("raises-on-purpose")(RaisingDefense)
    register_defense("wrong-shape-defense")(WrongShapeDefense)
    try:
        from benchmark.config import parse_config

        raw = tiny_raw(tmp_path_factory.mktemp("defenses"))
        raw["dataset"]["options"]["count"] = 128
        raw["training"]["epochs"] = 6
        raw["defenses"] = ["none", "jpeg", "raises-on-purpose", "wrong-shape-defense"]
        raw["attacks"] = [{"name": "pgd-linf", "budgets": ["8/255"]}]
        config = parse_config(raw, "tiny.toml")
        yield SimpleNamespace(config=config, result=run(config, progress=False, leaderboard=False))
    finally:
        for name in ("raises-on-purpose", "wrong-shape-defense"):
            get_registry("defenses").remove(name)


def _stage(result: object, label: str) -> object:
    return next(s for s in result.plan.stages if s.label == label)


def test_naive_pgd_overstates_jpeg_robustness(matrix: SimpleNamespace) -> None:
    config, result = matrix.config, matrix.result
    store = Store(config.run.store)
    row = result.table.set_index("defense").loc["jpeg"]
    assert bool(row["adaptive"]) and not bool(result.table.set_index("defense").loc["none", "adaptive"])
    train = _stage(result, "train resnet10t+jpeg")
    attack = _stage(result, "attack pgd-linf@8/255 vs resnet10t+jpeg")
    test = read_data(store.path(train.deps["data"])).subset("test")
    deployed, defense, info = read_deployed(store.path(train.key), train.params, 32, CPU)
    stored, _, record = read_attack(store.path(attack.key))
    assert record["adaptive"] is True and isinstance(deployed, TransformedModel)

    def pgd_on(model: nn.Module) -> np.ndarray:  # what the attack stage does, batch by batch, same seeds
        entry, out = get_component("attacks", "pgd-linf"), []
        for i in range(0, len(test), config.attack_batch_size):
            x = torch.as_tensor(test.images[i:i + config.attack_batch_size])
            y = torch.as_tensor(test.labels[i:i + config.attack_batch_size], dtype=torch.long)
            ctx = AttackContext(CPU, attack.params["seed"] + i, None, {}, config.attack_batch_size, False)
            out.append(call_attack(entry, model, x, y, 8 / 255, ctx).numpy())
        return np.concatenate(out)

    def robust(images: np.ndarray) -> float:
        clean = predict_proba(deployed, test.images, CPU) >= info["threshold"]
        adv = predict_proba(deployed, images, CPU) >= info["threshold"]
        return attack_outcome(test.labels, clean.astype(int), adv.astype(int)).summary["robust_accuracy"]["value"]

    bpda_images = pgd_on(deployed)
    np.testing.assert_allclose(bpda_images, stored, atol=1e-6)  # the engine attacked through BPDA
    naive_images = pgd_on(defense.wrap(deployed.model, naive=True))
    transfer_images = pgd_on(deployed.model)  # PGD on the bare model, evaluated behind JPEG
    clean, bpda_acc = row["clean_accuracy"], row["attack_outcome_robust_accuracy"]
    naive_acc, transfer_acc = robust(naive_images), robust(transfer_images)
    assert bpda_acc == pytest.approx(robust(bpda_images))
    print(f"jpeg q75, PGD-10 @8/255: clean {clean:.3f}, naive (zero-gradient) {naive_acc:.3f}, "
          f"transfer from bare model {transfer_acc:.3f}, BPDA {bpda_acc:.3f}")
    assert clean >= 0.8
    assert naive_acc >= clean - 0.1  # the zero gradient leaves the images where the random start put them
    assert naive_acc >= bpda_acc + 0.3


def test_a_broken_defense_fails_only_its_own_cells(matrix: SimpleNamespace) -> None:
    result = matrix.result
    status = {o.label: (o.status, o.error) for o in result.outcomes.values()}
    assert status["train resnet10t+raises-on-purpose"] == ("failed", "RuntimeError: this defense is broken on purpose")
    error = status["train resnet10t+wrong-shape-defense"][1]
    assert status["train resnet10t+wrong-shape-defense"][0] == "failed"
    assert error.startswith("defense WrongShapeDefense.training_batch returned images (16, 1, 31, 32) and labels "
                            "(16,) for a batch (16, 1, 32, 32); return (images, labels) with images of shape "
                            "(N, 1, 32, 32) and N labels")
    for name in ("raises-on-purpose", "wrong-shape-defense"):
        assert status[f"attack pgd-linf@8/255 vs resnet10t+{name}"][0] == "skipped"
        assert status[f"score pgd-linf@8/255 vs resnet10t+{name}"][0] == "skipped"
    assert sorted(result.table["defense"]) == ["jpeg", "none"]
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 7, "cached": 0, "failed": 2, "skipped": 4}


def test_gan_fakes_detect_trains_class_outputs_on_original_labels_and_a_detection_head() -> None:
    torch.manual_seed(0)
    defense = get_component("defenses", "gan-fakes-detect").obj({"fraction": 0.5, "detect_weight": 2.0})
    fakes, fake_labels = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 0, 1, 1, 0])
    defense.use_fakes(fakes.numpy(), fake_labels.numpy())
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 1, 0])
    bx, by = defense.training_batch(nn.Identity(), x, y, 0)
    assert bx.shape == (6, 1, 4, 4) and by[:4].tolist() == y.tolist()
    # a fake's code is its original label + 2: find each appended fake among the fakes to check its label
    for image, code in zip(bx[4:], by[4:]):
        source = int(torch.nonzero((fakes == image).flatten(1).all(1))[0])
        assert int(code) == int(fake_labels[source]) + 2
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    loss = defense.training_loss(lambda m, inputs, labels: F.cross_entropy(m(inputs), labels))
    logits = model(bx)
    fake = by >= 2
    expected = F.cross_entropy(logits[:, :2], by % 2) + 2.0 * F.binary_cross_entropy_with_logits(
        logits[:, 2], fake.float())
    assert torch.allclose(loss(model, bx, by), expected)


def test_gan_fakes_detect_options_are_its_own() -> None:
    with pytest.raises(BenchmarkError, match="detect_weight"):
        get_component("defenses", "gan-fakes-detect").obj({"detect_weight": -1})
    with pytest.raises(BenchmarkError, match="detect_weight"):
        get_component("defenses", "gan-fakes-relabel").obj({"detect_weight": 1})
