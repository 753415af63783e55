"""Expand a matrix config into a DAG of cached stages: data -> train (+defense) -> attack -> score."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from benchmark.compatibility import check_matrix
from benchmark.config import MatrixConfig, ModelSpec, budget_label
from benchmark.entry_checks import check_entry_options
from benchmark.errors import BenchmarkError
from benchmark.execution.store import stage_key
from benchmark.registry import get_component
from benchmark.stages import stage_version
from benchmark.training.recipes import train_defaults

__all__ = ["Stage", "Plan", "plan_matrix", "STAGE_KINDS"]

STAGE_KINDS = ("data", "train", "gan", "fakes", "attack", "score")


@dataclass(frozen=True)
class Stage:
    """One node of the DAG: what to compute (kind, params), from which artifacts (deps), named by key."""

    kind: str
    key: str
    label: str
    params: dict = field(hash=False, compare=False)
    deps: dict[str, str] = field(hash=False, compare=False)  # role -> key of the input stage
    cell: tuple | None = None  # (model, defense, attack, budget) for score stages
    versions: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # code versions in the key


@dataclass
class Plan:
    """Stages in dependency order, and the score stage of every cell."""

    stages: list[Stage]
    cells: list[Stage]

    def by_key(self) -> dict[str, Stage]:
        """Stages indexed by key."""
        return {s.key: s for s in self.stages}


class _Builder:
    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}

    def add(self, kind: str, label: str, params: dict, deps: dict[str, Stage], versions: dict[str, str],
            cell: tuple | None = None) -> Stage:
        versions = {**versions, f"stage:{kind}": stage_version(kind)}
        key = stage_key(kind, params, [d.key for d in deps.values()], versions)
        if key not in self.stages:  # two cells never compute the same artifact twice
            self.stages[key] = Stage(kind, key, label, params, {r: d.key for r, d in deps.items()}, cell, versions)
        return self.stages[key]


def _budgets(config: MatrixConfig, attack: object, entry: object) -> tuple[float, ...]:
    if entry.card.threat == "semantic":  # a GAN edit has no norm budget: one cell per (model, defense);
        return (0.0,)  # budgets given anyway are refused by check_matrix
    budgets = attack.budgets or entry.card.budget_values
    if not budgets:
        raise BenchmarkError(f"{config.source}: attacks '{attack.name}': no budgets given and the attack has no "
                             "defaults; add budgets = [\"1/255\", \"2/255\"]")
    threat = entry.card.threat
    side = config.dataset.image_size
    ceiling = {"linf": 1.0, "l2": math.sqrt(side * side)}.get(threat, math.inf)
    for eps in budgets:
        if not 0 < eps <= ceiling:
            raise BenchmarkError(f"{config.source}: attacks '{attack.name}': budget {eps:.6g} is outside "
                                 f"(0, {ceiling:.6g}] for a {threat} attack on [0,1] images")
    return budgets


def _check_inputs(config: MatrixConfig, dataset: object) -> None:
    """Before any work: every entry's options against its card, the data set's own check (root folders and the
    like) and every local checkpoint file."""
    check_entry_options(config)
    check = dataset.card.check_options
    if check is not None:
        try:
            check(config.dataset)
        except BenchmarkError as exc:
            raise BenchmarkError(f"{config.source}: {exc}") from None
    for i, model in enumerate(config.models):
        path = model.train.checkpoint
        if path and not Path(path).expanduser().is_file():
            raise BenchmarkError(f"{config.source}: models[{i}].checkpoint: {path!r} is not a file; give the path "
                                 "of a local state_dict (torch.save(model.state_dict(), path))")


def plan_matrix(config: MatrixConfig) -> Plan:
    """The DAG for every (model x defense x attack x budget) cell; unknown names fail before anything runs."""
    b = _Builder()
    dataset = get_component("datasets", config.dataset.name)
    models = [(m, get_component("models", m.name)) for m in config.models]
    defenses = [(d, get_component("defenses", d.name)) for d in config.defenses]
    attacks = [(a, get_component("attacks", a.name)) for a in config.attacks]
    attacks = [(a, e, _budgets(config, a, e)) for a, e in attacks]
    check_matrix(config)  # threat-model checks per cell: refuse what cannot run honestly, warn where unsure
    _check_inputs(config, dataset)  # data set options and checkpoint files: before anything is written
    seed = config.run.seed
    data = b.add("data", f"data {dataset.name}@{config.dataset.image_size}px",
                 {"dataset": asdict(config.dataset)}, {}, {f"dataset:{dataset.name}": dataset.version})
    cells: list[Stage] = []
    trains: dict[tuple[str, str], tuple[Stage, dict]] = {}
    for model, m_entry in models:
        for defense, d_entry in defenses:
            train_params = {"model": asdict(model), "defense": asdict(defense), "seed": seed}
            versions = {f"model:{model.name}": m_entry.version, f"defense:{defense.name}": d_entry.version}
            train_deps = {"data": data}
            if "fakes" in d_entry.card.needs:  # trains on fakes made against the same model, undefended
                train_deps["fakes"] = _defense_fakes(b, config, data, model, attacks)
            if model.train.distill:  # learns from a trained teacher's soft outputs as well as from the labels
                train_deps["teacher"], train_params["teacher"] = _teacher(b, config, data, model)
            train = b.add("train", f"train {model.name}+{defense.name}", train_params, train_deps, versions)
            trains[(model.name, defense.name)] = (train, versions)
            for attack, a_entry, budgets in attacks:
                for eps in budgets:
                    name = attack.cell_name  # its label when the config runs one attack twice
                    cell = (model.name, defense.name, name, eps)
                    params = {"attack": {"name": attack.name, "options": attack.options}, "budget": eps,
                              "train": train_params, "seed": seed}
                    label = f"{name}@{budget_label(eps)} vs {model.name}+{defense.name}"
                    deps = {"data": data, "train": train}
                    if "fakes" in a_entry.card.needs:  # one fakes stage per GAN seed (option `seeds`)
                        fakes = _fakes_stage(b, config, data, attack, a_entry, (train, train_params, versions))
                        deps.update({"fakes" if k == 0 else f"fakes_{k}": f for k, f in enumerate(fakes)})
                    att = b.add("attack", f"attack {label}", params, deps,
                                {**versions, f"attack:{attack.name}": a_entry.version})
                    score = b.add("score", f"score {label}",
                                  {"cell": {"model": model.name, "defense": defense.name, "attack": name,
                                            "budget": eps}},
                                  {"data": data, "train": train, "attack": att}, {}, cell)
                    cells.append(score)
            if config.sanity_budget > 0:
                cells.append(_sanity_cell(b, config, data, train, train_params, versions))
    return Plan(list(b.stages.values()), cells)


SANITY_ATTACK = "pgd-linf"  # white-box, default options: shared with a matrix cell of the same budget


def _sanity_cell(b: _Builder, config: MatrixConfig, data: Stage, train: Stage, train_params: dict,
                 versions: dict[str, str]) -> Stage:
    """PGD-L-inf at [attack] sanity_budget against one entry: a white-box attack that reaches the model brings it
    near chance there (benchmark/leaderboard/checks.py). Scored with role "sanity": it ranks on no board."""
    eps, model, defense = config.sanity_budget, train_params["model"]["name"], train_params["defense"]["name"]
    entry = get_component("attacks", SANITY_ATTACK)
    label = f"{SANITY_ATTACK}@{budget_label(eps)} vs {model}+{defense} (sanity)"
    att = b.add("attack", f"attack {label}", {"attack": {"name": SANITY_ATTACK, "options": {}}, "budget": eps,
                                              "train": train_params, "seed": config.run.seed},
                {"data": data, "train": train}, {**versions, f"attack:{SANITY_ATTACK}": entry.version})
    return b.add("score", f"score {label}",
                 {"cell": {"model": model, "defense": defense, "attack": SANITY_ATTACK, "budget": eps,
                           "role": "sanity"}},
                 {"data": data, "train": train, "attack": att}, {}, (model, defense, SANITY_ATTACK, eps, "sanity"))


def _surrogate(config: MatrixConfig, name: str, attack: str) -> tuple[dict, dict[str, str]]:
    """Train params and versions of a matrix model trained without defense (a surrogate, or a GAN's target)."""
    match = [m for m in config.models if m.name == name]
    if not match:
        raise BenchmarkError(f"{config.source}: attacks '{attack}': surrogate '{name}' is not a model of the "
                             f"matrix; use one of {', '.join(m.name for m in config.models)}")
    return _undefended(config, match[0])


def _undefended(config: MatrixConfig, spec: ModelSpec) -> tuple[dict, dict[str, str]]:
    """Train params and versions of `spec` trained without defense."""
    params = {"model": asdict(spec), "defense": {"name": "none", "options": {}}, "seed": config.run.seed}
    versions = {f"model:{spec.name}": get_component("models", spec.name).version,
                "defense:none": get_component("defenses", "none").version}
    return params, versions


def _undefended_train(b: _Builder, config: MatrixConfig, data: Stage, params: dict,
                      versions: dict[str, str]) -> Stage:
    """The train stage of a matrix model without defense (a surrogate or a GAN's target), with its teacher when it
    distils: the same stage as the model's own `none` entry, never a second, undistilled training."""
    deps = {"data": data}
    spec = next(m for m in config.models if m.name == params["model"]["name"])
    if spec.train.distill:
        deps["teacher"], params["teacher"] = _teacher(b, config, data, spec)
    return b.add("train", f"train {spec.name}+none", params, deps, versions)


def _teacher(b: _Builder, config: MatrixConfig, data: Stage, model: ModelSpec) -> tuple[Stage, dict]:
    """The undefended train stage of the model that `model` distils from: its matrix entry when listed (so the
    stage is shared), else the teacher's own recipe over the [training] section."""
    name = model.train.distill
    get_component("models", name)  # unknown names fail here, with close matches
    if name == model.name:
        raise BenchmarkError(f"{config.source}: models '{model.name}': distill = \"{name}\" names the model itself; "
                             "name another registered model to learn from, such as \"resnet10t\"")
    listed = [m for m in config.models if m.name == name]
    spec = listed[0] if listed else ModelSpec(name, replace(config.training, distill=None, **train_defaults(name)))
    if spec.train.distill:
        raise BenchmarkError(f"{config.source}: models '{model.name}': its teacher '{name}' distils from "
                             f"'{spec.train.distill}' itself; teachers must be trained from labels only")
    params, versions = _undefended(config, spec)
    return b.add("train", f"train {name}+none", params, {"data": data}, versions), params


GAN_SEED_STRIDE = 1000  # GAN seed k trains with run.seed + 1000 k (each direction adds 0 or 1 to its seed)


def _gan_fakes(b: _Builder, config: MatrixConfig, data: Stage, train: Stage, params: dict, versions: dict[str, str],
               schedule: dict, k: int = 0) -> Stage:
    """gan -> fakes against the classifier of `train` (GAN seed k). The generators depend on that classifier, not on
    which cell asked for them: transfer fakes made against a surrogate are the white-box fakes of its own cell."""
    who = f"{params['model']['name']}+{params['defense']['name']}" + (f" (seed {k})" if k else "")
    seed = config.run.seed + GAN_SEED_STRIDE * k
    gan = b.add("gan", f"gan vs {who}", {"options": schedule, "target": params, "seed": seed},
                {"data": data, "train": train}, versions)
    return b.add("fakes", f"fakes vs {who}", {"seed": seed}, {"data": data, "gan": gan}, {})


def _schedule(attack: object, entry: object) -> dict:
    from benchmark.attacks.gan import check_options

    options = check_options(attack.name, dict(attack.options), entry.card.access == "transfer")
    return {k: v for k, v in options.items() if k not in ("surrogate", "seeds")}


def _fakes_stage(b: _Builder, config: MatrixConfig, data: Stage, attack: object, entry: object,
                 target: tuple[Stage, dict, dict[str, str]]) -> list[Stage]:
    """The fakes a GAN attack cell uses, one per GAN seed: made against the attacked model (white-box) or the
    surrogate (transfer)."""
    schedule = _schedule(attack, entry)
    seeds = int(attack.options.get("seeds") or 1)
    if entry.card.access == "transfer":
        params, versions = _surrogate(config, attack.options.get("surrogate", config.models[0].name), attack.name)
        train = _undefended_train(b, config, data, params, versions)
    else:
        train, params, versions = target
    return [_gan_fakes(b, config, data, train, params, versions, schedule, k) for k in range(seeds)]


def _defense_fakes(b: _Builder, config: MatrixConfig, data: Stage, model: object, attacks: list) -> Stage:
    """The fakes a fake-based defense trains on: the lesion GAN against the same model without a defense, with the
    schedule of the matrix's first GAN attack (so those fakes are shared with its cells), else the default one."""
    gan_attacks = [(a, e) for a, e, _ in attacks if "fakes" in e.card.needs]
    schedule = _schedule(*gan_attacks[0]) if gan_attacks else {}
    params, versions = _surrogate(config, model.name, "gan")
    train = _undefended_train(b, config, data, params, versions)
    return _gan_fakes(b, config, data, train, params, versions, schedule)
