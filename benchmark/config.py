"""Matrix configuration: TOML in, validated typed objects out; every error names the file and the key."""
from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.training.recipes import train_defaults

__all__ = ["RunSettings", "DatasetSpec", "TrainSpec", "ModelSpec", "DefenseSpec", "AttackSpec", "MatrixConfig",
           "load_config", "parse_config", "parse_budget", "parse_memory", "budget_label", "file_sha256",
           "DEFAULT_CONFIG"]

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.toml"
DEVICES = ("auto", "cpu", "cuda")
SANITY_BUDGET = 32 / 255
SEED_RANGE = (0, 2**32 - 1)  # what numpy's and torch's generators accept on every platform
IMAGE_SIZE_RANGE = (32, 4096)  # below 32 px the backbones' strides leave nothing; above 4096 px no mammogram needs
EPOCHS_RANGE = (1, 10_000)
BATCH_RANGE = (1, 65_536)


@dataclass(frozen=True)
class RunSettings:
    """Run-wide settings: name, seed, device and where artifacts and leaderboards go."""

    name: str = "default"
    seed: int = 0
    device: str = "auto"
    store: Path = Path("runs")
    leaderboards: Path = Path("leaderboards")
    max_memory: int | None = None  # bytes a stage may use for its batches (None: the device's free memory)


@dataclass(frozen=True)
class DatasetSpec:
    """Which data set, at which square resolution, with its own options and the split fractions."""

    name: str
    image_size: int = 64
    seed: int = 0
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    options: dict = field(default_factory=dict)
    skip_bad: bool = True  # unreadable files are skipped and listed (summary.json meta.skipped) instead of failing


@dataclass(frozen=True)
class TrainSpec:
    """A training recipe's knobs; models take defaults from [training] and override per model."""

    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    checkpoint: str | None = None  # local path to a state_dict; loaded with weights_only=True
    augment: str = "light"  # "light": vertical flip + gamma; "strong": also mirror and shift (benchmark.training.loop)
    distill: str | None = None  # a registered model to distil from (its undefended weights; benchmark.training.losses)
    pretrained_file: str | None = None  # local timm weights (ImageNet): head dropped, first conv summed to 1 channel
    pretrained_sha256: str | None = None  # the file's content hash, set by the parser: part of the train stage's key


@dataclass(frozen=True)
class ModelSpec:
    """One model of the matrix: a registered name, its recipe and entry options."""

    name: str
    train: TrainSpec = TrainSpec()
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DefenseSpec:
    """One defense of the matrix and its options."""

    name: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AttackSpec:
    """One attack of the matrix, its budgets (in the [0,1] intensity scale) and options."""

    name: str
    budgets: tuple[float, ...] = ()
    options: dict = field(default_factory=dict)
    label: str | None = None  # the cell's name on the boards when one attack runs twice (e.g. two GAN presets)

    @property
    def cell_name(self) -> str:
        """The attack's name in cells and leaderboards: its label, else its registry name."""
        return self.label or self.name


@dataclass(frozen=True)
class MatrixConfig:
    """A whole validated matrix: run settings, data set, models x defenses x attacks."""

    run: RunSettings
    dataset: DatasetSpec
    models: tuple[ModelSpec, ...]
    defenses: tuple[DefenseSpec, ...]
    attacks: tuple[AttackSpec, ...]
    source: str = "<dict>"
    attack_batch_size: int = 64
    training: TrainSpec = TrainSpec()  # the [training] section, before any model's own defaults
    # [attack] sanity_budget: every entry also gets PGD-L-inf at this budget, which must bring it near chance
    # (benchmark/leaderboard/checks.py); it ranks on no board. 0 turns the check off.
    sanity_budget: float = SANITY_BUDGET

    def digest(self) -> str:
        """A short hash of everything that decides results (not where they are written)."""
        data = asdict(self)
        data.pop("source")
        data.pop("training")  # reaches results only through each ModelSpec.train, which is hashed
        data["run"] = {"seed": self.run.seed}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def with_cell(self, model: str | None, defense: str | None, attack: str | None) -> MatrixConfig:
        """This config narrowed (or extended) to one model, defense and attack."""
        def pick(items: tuple, name: str | None, make: Any) -> tuple:
            if name is None:
                return items
            found = [i for i in items if getattr(i, "cell_name", i.name) == name] or \
                [i for i in items if i.name == name]
            return tuple(found) if found else (make(name),)
        return replace(self,
                       models=pick(self.models, model, lambda n: ModelSpec(n, replace(self.training,
                                                                                      **train_defaults(n)))),
                       defenses=pick(self.defenses, defense, DefenseSpec),
                       attacks=pick(self.attacks, attack, AttackSpec))


_SECTIONS = {"run", "dataset", "training", "models", "defenses", "attacks", "attack"}
_RUN_KEYS = {"name", "seed", "device", "store", "leaderboards", "max_memory"}
_DATA_KEYS = {"name", "image_size", "split", "options", "skip_bad"}
_TRAIN_KEYS = {"epochs", "batch_size", "lr", "weight_decay", "checkpoint", "augment", "distill", "pretrained_file"}
AUGMENTATIONS = ("light", "strong")
_ATTACK_SECTION_KEYS = {"batch_size", "sanity_budget"}


class _Checker:
    """Reads typed values out of raw TOML tables, naming file and key in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> BenchmarkError:
        return BenchmarkError(f"{self.source}: {key}: {problem}")

    def keys(self, table: Any, allowed: set[str], where: str) -> dict:
        if not isinstance(table, dict):
            raise self.fail(where, f"expected a table, got {type(table).__name__}")
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.fail(f"{where}.{key}" if where else key,
                                f"unknown key{hint}; allowed: {', '.join(sorted(allowed))}")
        return table

    def choice(self, table: dict, key: str, allowed: tuple[str, ...], default: str, where: str) -> str:
        value = self.typed(table, key, str, default, where)
        if value not in allowed:
            raise self.fail(f"{where}.{key}", f"'{value}' is not one of {', '.join(allowed)}")
        return value

    def typed(self, table: dict, key: str, kind: type | tuple, default: Any, where: str) -> Any:
        value = table.get(key, default)
        if value is None:
            return value
        if isinstance(value, bool) and kind is not bool:
            raise self.fail(f"{where}.{key}", f"expected {getattr(kind, '__name__', kind)}, got a boolean")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(f"{where}.{key}", f"expected {name}, got {value!r}")
        return value

    def within(self, table: dict, key: str, kind: type, default: Any, where: str, bounds: tuple) -> Any:
        """A number of the given type inside [lo, hi] (inclusive), or an error naming the key and the range."""
        value = self.typed(table, key, kind, default, where)
        lo, hi = bounds
        if value is not None and not lo <= value <= hi:  # also refuses NaN
            raise self.fail(f"{where}.{key}", f"must lie in [{lo}, {hi}], got {value}")
        return value


def parse_budget(value: Any) -> float:
    """A budget as a float: a number, or a string such as '2/255'."""
    if isinstance(value, bool):
        raise ValueError("a budget cannot be a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            num, _, den = value.replace(" ", "").partition("/")
            return float(Fraction(num) / Fraction(den or "1"))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"cannot read budget {value!r}; write a number or a fraction like '2/255'") from exc
    raise ValueError(f"cannot read budget {value!r}; write a number or a fraction like '2/255'")


def budget_label(eps: float) -> str:
    """A budget as people write it: 2/255 rather than 0.00784."""
    frac = Fraction(eps * 255).limit_denominator(4)
    if eps * 255 <= 64 and abs(float(frac) / 255 - eps) < 1e-9:
        return f"{float(frac):g}/255"
    return f"{eps:.4g}"


_MEMORY_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
                 "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory(value: Any) -> int:
    """A memory size in bytes: an integer number of bytes, or a string such as '8GB', '512 MiB'."""
    if isinstance(value, int) and not isinstance(value, bool):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", value)
        if not match or match.group(2).lower() not in _MEMORY_UNITS:
            raise ValueError(f"cannot read {value!r}; write bytes or a size such as \"8GB\" or \"512MiB\"")
        number, unit = float(match.group(1)), match.group(2).lower()
    else:
        raise ValueError(f"cannot read {value!r}; write bytes or a size such as \"8GB\" or \"512MiB\"")
    size = int(number * _MEMORY_UNITS[unit])
    if size < 1:
        raise ValueError(f"{value!r} is not a positive size")
    return size


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pretrained(check: _Checker, table: dict, base: TrainSpec, where: str) -> tuple[str | None, str | None]:
    """pretrained_file and its content hash (the hash keys the train stage: a changed file retrains)."""
    path = check.typed(table, "pretrained_file", str, base.pretrained_file, where)
    if path is None:
        return None, None
    if path == base.pretrained_file and base.pretrained_sha256:
        return path, base.pretrained_sha256
    try:
        return path, file_sha256(Path(path).expanduser())
    except OSError as exc:
        raise check.fail(f"{where}.pretrained_file", f"cannot read {path!r} ({exc.strerror}); give the path of a "
                                                     "local timm state_dict (torch.save(model.state_dict(), path))"
                         ) from None


def _train_spec(check: _Checker, table: dict, base: TrainSpec, where: str) -> TrainSpec:
    pretrained_file, pretrained_sha256 = _pretrained(check, table, base, where)
    return TrainSpec(
        epochs=check.within(table, "epochs", int, base.epochs, where, EPOCHS_RANGE),
        batch_size=check.within(table, "batch_size", int, base.batch_size, where, BATCH_RANGE),
        lr=check.within(table, "lr", float, base.lr, where, (1e-12, 10.0)),
        weight_decay=check.within(table, "weight_decay", float, base.weight_decay, where, (0.0, 10.0)),
        checkpoint=check.typed(table, "checkpoint", str, base.checkpoint, where),
        augment=check.choice(table, "augment", AUGMENTATIONS, base.augment, where),
        distill=check.typed(table, "distill", str, base.distill, where),  # the name is checked by the planner
        pretrained_file=pretrained_file, pretrained_sha256=pretrained_sha256,
    )


def _entry_list(check: _Checker, raw: Any, section: str) -> list[dict]:
    """[[models]] tables, or a plain list of names, as a list of tables."""
    if raw is None:
        raise check.fail(section, f'missing; list at least one entry, e.g. [[{section}]] name = "..."')
    if not isinstance(raw, list) or not raw:
        raise check.fail(section, f"expected a non-empty list of names or [[{section}]] tables")
    out = []
    for i, item in enumerate(raw):
        item = {"name": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise check.fail(f"{section}[{i}]", "needs a string 'name'")
        out.append(item)
    return out


def _max_memory(check: _Checker, run_t: dict) -> int | None:
    if run_t.get("max_memory") is None:
        return None
    try:
        return parse_memory(run_t["max_memory"])
    except ValueError as exc:
        raise check.fail("run.max_memory", str(exc)) from None


def parse_config(raw: dict, source: str = "<dict>") -> MatrixConfig:
    """Validate a raw TOML dict into a MatrixConfig (entry names are checked by the planner)."""
    check = _Checker(source)
    check.keys(raw, _SECTIONS, "")
    run_t = check.keys(raw.get("run", {}), _RUN_KEYS, "run")
    device = check.typed(run_t, "device", str, "auto", "run")
    if device not in DEVICES:
        raise check.fail("run.device", f"'{device}' is not one of {', '.join(DEVICES)}")
    seed = check.within(run_t, "seed", int, 0, "run", SEED_RANGE)
    run = RunSettings(name=check.typed(run_t, "name", str, "default", "run"), seed=seed, device=device,
                      store=Path(check.typed(run_t, "store", str, "runs", "run")),
                      leaderboards=Path(check.typed(run_t, "leaderboards", str, "leaderboards", "run")),
                      max_memory=_max_memory(check, run_t))

    data_t = check.keys(raw.get("dataset"), _DATA_KEYS, "dataset") if "dataset" in raw else None
    if data_t is None or "name" not in data_t:
        raise check.fail("dataset.name", "missing; name a registered data set, e.g. \"synthetic-mammo\"")
    split = data_t.get("split", [0.6, 0.2, 0.2])
    if (not isinstance(split, list) or len(split) != 3 or not all(isinstance(s, (int, float)) for s in split)
            or any(s <= 0 for s in split) or abs(sum(split) - 1.0) > 1e-6):
        raise check.fail("dataset.split", f"expected three positive fractions [train, val, test] summing to 1, "
                                          f"got {split!r}")
    size = check.within(data_t, "image_size", int, 64, "dataset", IMAGE_SIZE_RANGE)
    dataset = DatasetSpec(name=check.typed(data_t, "name", str, None, "dataset"), image_size=size, seed=seed,
                          split=tuple(float(s) for s in split),
                          options=dict(check.typed(data_t, "options", dict, {}, "dataset")),
                          skip_bad=check.typed(data_t, "skip_bad", bool, True, "dataset"))

    base = _train_spec(check, check.keys(raw.get("training", {}), _TRAIN_KEYS, "training"), TrainSpec(), "training")
    models = []
    for i, item in enumerate(_entry_list(check, raw.get("models"), "models")):
        where = f"models[{i}]"
        check.keys(item, _TRAIN_KEYS | {"name", "options"}, where)
        # precedence: this [[models]] table, then the model's own defaults (benchmark/training/recipes.py), then base
        merged = {**train_defaults(item["name"]), **item}
        models.append(ModelSpec(item["name"], _train_spec(check, merged, base, where),
                                dict(check.typed(item, "options", dict, {}, where))))

    defenses = []
    for i, item in enumerate(_entry_list(check, raw.get("defenses", ["none"]), "defenses")):
        check.keys(item, {"name", "options"}, f"defenses[{i}]")
        defenses.append(DefenseSpec(item["name"], dict(check.typed(item, "options", dict, {}, f"defenses[{i}]"))))

    attacks = []
    for i, item in enumerate(_entry_list(check, raw.get("attacks"), "attacks")):
        where = f"attacks[{i}]"
        check.keys(item, {"name", "budgets", "options", "label"}, where)
        label = check.typed(item, "label", str, None, where)
        if label is not None and not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,40}", label):
            raise check.fail(f"{where}.label", f"{label!r} is not a short lowercase name such as \"gan-fast\" "
                                               "(letters, digits, '.', '_', '-')")
        budgets = item.get("budgets", [])
        if not isinstance(budgets, list):
            raise check.fail(f"{where}.budgets", "expected a list such as [\"1/255\", \"2/255\"]")
        if "budgets" in item and not budgets:
            raise check.fail(f"{where}.budgets", "is empty; list at least one budget, or leave the key out for "
                                                 "the attack's default budgets")
        try:
            values = tuple(parse_budget(b) for b in budgets)
        except ValueError as exc:
            raise check.fail(f"{where}.budgets", str(exc)) from None
        attacks.append(AttackSpec(item["name"], values, dict(check.typed(item, "options", dict, {}, where)), label))

    attack_t = check.keys(raw.get("attack", {}), _ATTACK_SECTION_KEYS, "attack")
    try:
        sanity = parse_budget(attack_t.get("sanity_budget", SANITY_BUDGET))
    except ValueError as exc:
        raise check.fail("attack.sanity_budget", f"{exc}; 0 turns the large-budget check off") from None
    if not 0 <= sanity <= 1:
        raise check.fail("attack.sanity_budget", f"must lie in [0, 1] (an L-inf budget; 0 turns the check off), "
                                                 f"got {sanity:.6g}")
    _no_duplicates(check, "models", [m.name for m in models])
    _no_duplicates(check, "defenses", [d.name for d in defenses])
    _no_duplicates(check, "attacks", [a.cell_name for a in attacks])
    return MatrixConfig(run, dataset, tuple(models), tuple(defenses), tuple(attacks), source,
                        check.within(attack_t, "batch_size", int, 64, "attack", BATCH_RANGE), base, sanity)


def _no_duplicates(check: _Checker, section: str, names: list[str]) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise check.fail(section, f"'{sorted(seen)[0]}' is listed twice; list each entry once")


def load_config(path: Path | str | None = None) -> MatrixConfig:
    """Read and validate a TOML matrix config (the default config when path is None)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BenchmarkError(f"config file not found: {path}") from None
    except OSError as exc:
        raise BenchmarkError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise BenchmarkError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                             "save the config as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchmarkError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, str(path))
