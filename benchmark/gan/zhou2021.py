"""The lesion GAN of Zhou et al. 2021 as the study's own code has it (QianWeiZhou/Medical-AI-Adversarial-Attack).

Written afresh after the study's files: unet_model_bear1728.py and unet_parts_bear1728.py (generator),
DiscriminatorVGG1728.py with the FNnet class of trainV1728posPal41.py (critic), trainV1728posPal41.py and
trainV1728negPal41.py (losses, schedule, optimisers, augmentation) and testV1728posPal41.py (inference: eval mode,
sigmoid output). The study's images are 1728x1408 16-bit mammograms scaled to [0,1]; here the same networks are
scaled down by `width` and `depth`. Not wired into the engine yet (the zhou2021 preset of benchmark/gan/training.py).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from benchmark.errors import BenchmarkError
from benchmark.gan.networks import backbone_of

__all__ = ["STUDY_MEAN", "STUDY_STD", "StudyCritic", "StudyGenerator", "StudySchedule", "critic_adversarial",
           "critic_loss", "generator_adversarial", "generator_fidelity", "generator_loss", "gradient_penalty",
           "level_widths", "study_augment"]

# The study repeats the grey image into 3 channels and normalises with ImageNet's statistics
# (ImageDataset5f1728.py); the generator sees channel 0 only, i.e. (x - 0.485) / 0.229.
STUDY_MEAN, STUDY_STD = 0.485, 0.229

# timm's names for the modules forward_head(pre_logits=True) runs after forward_features (the study's "top", FNnet).
_TOP_MODULES = ("global_pool", "head_drop", "fc_norm", "pre_logits", "attn_pool", "head")


def level_widths(width: int, depth: int) -> list[int]:
    """Channels of each resolution level: doubling from `width`, capped at 8 * width (study: 64 ... 512, 512, 512)."""
    return [min(width * 2 ** i, 8 * width) for i in range(depth)]


class _DoubleConv(nn.Sequential):
    """Two (3x3 conv with bias, BatchNorm, LeakyReLU 0.2) layers: the study's double_conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


def _study_init(module: nn.Module) -> None:
    """The study's util.initialize_weights: Xavier-normal convs with zero bias, BatchNorm at (1, 0)."""
    if isinstance(module, nn.Conv2d):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class StudyGenerator(nn.Module):
    """The study's U-Net: `depth` resolution levels (study 6: five 2x average-poolings), BatchNorm, sigmoid output.

    Input: 1-channel images in [0,1], normalised as the study's (x - 0.485) / 0.229. Down: AvgPool2d(2) then a
    double conv; up: bilinear 2x (align_corners=True), concatenation [skip, upsampled], a double conv whose output
    has the channels of the level above (study: 512, 256, 128, 64, 64); a 3x3 conv to one logit; sigmoid.
    """

    def __init__(self, width: int = 64, depth: int = 6) -> None:
        super().__init__()
        if depth < 2 or width < 1:
            raise BenchmarkError(f"StudyGenerator needs depth >= 2 and width >= 1, got depth={depth}, width={width}")
        widths = level_widths(width, depth)
        self.depth = depth
        self.inc = _DoubleConv(1, widths[0])
        self.down = nn.ModuleList(_DoubleConv(widths[i - 1], widths[i]) for i in range(1, depth))
        ups, below = [], widths[-1]
        for level in reversed(range(depth - 1)):
            out = widths[max(level - 1, 0)]
            ups.append(_DoubleConv(below + widths[level], out))
            below = out
        self.up = nn.ModuleList(ups)
        self.out = nn.Conv2d(widths[0], 1, 3, padding=1)
        self.apply(_study_init)

    def check_size(self, x: torch.Tensor) -> None:
        """Raise a one-line BenchmarkError unless x is (B, 1, H, W) with H and W divisible by 2 ** (depth - 1)."""
        side = 2 ** (self.depth - 1)
        if x.dim() != 4 or x.shape[1] != 1:
            raise BenchmarkError(f"StudyGenerator takes (batch, 1, H, W) images, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % side or w % side:
            raise BenchmarkError(f"StudyGenerator with depth {self.depth} needs image sides divisible by {side}, "
                                 f"got {h}x{w}")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output logits (the study's GN(x), before its sigmoid)."""
        self.check_size(x)
        skips = [self.inc((x - STUDY_MEAN) / STUDY_STD)]
        for block in self.down:
            skips.append(block(F.avg_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
            y = block(torch.cat([skips.pop(), y], dim=1))
        return self.out(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The edited image, same shape as x, in (0, 1)."""
        return torch.sigmoid(self.logits(x))


class StudyCritic(nn.Module):
    """The study's critic: the attacked classifier's frozen features and top, and a new Linear(top -> 1) head.

    The study's classifier is VGG-11 features (VN) -> top (FNnet: two convs, global max pool, MLP 2048-8192-2048-256)
    -> Linear(256 -> 2) (CN); its critic keeps VN and FN and replaces CN with Linear(256 -> 1) (DN). Here the top is
    timm's forward_head(pre_logits=True) (global pooling, plus pre-logits norm or MLP where a model has them), so the
    study's 256-dim layer is the input of the classifier's last linear layer (its num_features / head_hidden_size
    vector: 512 for zhou2021-vgg11, 512 for resnet10t). All classifier layers stay frozen and in eval mode.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = copy.deepcopy(backbone_of(classifier))
        for p in self.classifier.parameters():
            p.requires_grad_(False)
        self.classifier.eval()
        self.head = nn.Linear(_pre_logits_dim(self.classifier), 1)
        _study_init_linear(self.head)

    def train(self, mode: bool = True) -> StudyCritic:
        """Set the head's mode; the classifier's layers always stay in eval mode."""
        super().train(mode)
        self.classifier.eval()
        return self

    def top_modules(self) -> list[nn.Module]:
        """The classifier modules of the top (what forward_head runs before the classifier's last linear layer)."""
        return [m for name, m in self.classifier.named_children() if name in _TOP_MODULES]

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's pre-logit vector (the study's 256-dim FNnet output) for images x, input hooks applied."""
        net = self.classifier
        for hook in net._forward_pre_hooks.values():  # e.g. the benchmark's (x - 0.5) / 0.25 standardisation
            result = hook(net, (x,))
            if result is not None:
                x = result[0] if isinstance(result, tuple) else result
        return net.forward_head(net.forward_features(x), pre_logits=True).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One real/fake logit per image, shape (B,) (positive: looks real)."""
        return self.head(self.pre_logits(x)).reshape(-1)


def _pre_logits_dim(net: nn.Module) -> int:
    """Width of the classifier's pre-logit vector: its last linear layer's input, else timm's head_hidden_size."""
    last = net.get_classifier() if hasattr(net, "get_classifier") else None
    if isinstance(last, nn.Linear):
        return last.in_features
    dim = getattr(net, "head_hidden_size", None) or getattr(net, "num_features", None)
    if not dim:
        raise BenchmarkError(f"{type(net).__name__} has no linear classifier or num_features to size the critic head")
    return int(dim)


def _study_init_linear(layer: nn.Linear) -> None:
    """The study's initialisation of DN's Linear: Xavier-normal weight, zero bias."""
    nn.init.xavier_normal_(layer.weight)
    nn.init.zeros_(layer.bias)


def critic_adversarial(d_real: torch.Tensor, d_fake: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """The study's Ddis + |Drf - 1|: mean softplus(-D(r)) - mean softplus(-D(f)) + |mean softplus(-D(r)) - 1|."""
    drf = F.softplus(-d_real).mean()
    dff = -F.softplus(-d_fake).mean()
    return drf + dff + (drf - real_target).abs()


def gradient_penalty(d_real: torch.Tensor, real_images: torch.Tensor, weight: float = 10.0,
                     power: int = 2) -> torch.Tensor:
    """The study's div_gp on reals: weight / 2 * mean over images of (sum of squared input gradients) ** power.

    With the study's k = 10 and p = 2 this is 5 * mean ||dD/dx||^4; real_images must require grad and d_real be
    computed from them (per-image logits, so the gradient of their sum is each image's own gradient).
    """
    (grad,) = torch.autograd.grad(d_real.sum(), real_images, create_graph=True)
    return grad.reshape(grad.shape[0], -1).pow(2).sum(1).pow(power).mean() * weight / 2


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor, real_images: torch.Tensor,
                schedule: StudySchedule | None = None) -> torch.Tensor:
    """The study's d_loss: critic_adversarial + gradient_penalty on the real images."""
    s = schedule or StudySchedule()
    return (critic_adversarial(d_real, d_fake, s.real_target)
            + gradient_penalty(d_real, real_images, s.gp_weight, s.gp_power))


def generator_adversarial(d_fake: torch.Tensor) -> torch.Tensor:
    """The study's g_loss: mean softplus(-D(G(x)))."""
    return F.softplus(-d_fake).mean()


def generator_fidelity(x: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The study's l2_Xnoise: MSE(fake, x) / mean((x - 0.485) ** 2) (its 0.229 normalisation cancels)."""
    return F.mse_loss(fake, x) / ((x - STUDY_MEAN) ** 2).mean()


def generator_loss(d_fake: torch.Tensor, x: torch.Tensor, fake: torch.Tensor,
                   schedule: StudySchedule | None = None) -> torch.Tensor:
    """The study's generator loss after identity pretraining: g_loss + l2_Xnoise (both weight 1)."""
    s = schedule or StudySchedule()
    return s.adversarial_weight * generator_adversarial(d_fake) + s.fidelity_weight * generator_fidelity(x, fake)


@dataclass(frozen=True)
class StudySchedule:
    """The study's numbers (trainV1728posPal41.py: modelStates, generate_model, pretransform, k and p)."""

    batch_size: int = 2
    critic_steps_per_generator_step: int = 5  # GN_pass = 5 once the critic trains; the critic steps every batch
    generator_lr_identity: float = 1e-4  # stage 0, fidelity only
    generator_lr: float = 1e-5  # stages 1-4
    critic_lr: float = 1e-4  # new head (DN) and the classifier's top (FN)
    features_lr: float = 1e-5  # the classifier's feature layers (VN, DN_lr / 10), last stage only
    betas: tuple[float, float] = (0.5, 0.9)  # every Adam
    gp_weight: float = 10.0  # k: the penalty is k / 2 * mean(|grad|^2p)
    gp_power: int = 2  # p
    real_target: float = 1.0  # |Drf - 1|
    adversarial_weight: float = 1.0
    fidelity_weight: float = 1.0
    identity_epochs: int = 11  # epochs 0-10: generator on fidelity alone, no critic
    head_only_epochs: int = 10  # 11-20: critic head alone, generator idle
    head_epochs: int = 10  # 21-30: head and generator
    top_epochs: int = 300  # 31-330: + the classifier's top (the study's fakes: epochs 280 and 320)
    features_epochs: int = 270  # 331-600: + the feature layers at features_lr
    vflip_p: float = 0.5  # RandomVerticalFlip (no horizontal flip)
    max_rotation: float = 45.0  # RandomAffine(45, ...): degrees drawn from [-45, 45]
    max_shear: float = 45.0  # shear=45: x-shear drawn from [-45, 45], no y-shear; no translation, no scaling

    def phase(self, epoch: int) -> str:
        """Which stage an epoch belongs to: identity, head-only, head, top or features."""
        bounds = [("identity", self.identity_epochs), ("head-only", self.head_only_epochs),
                  ("head", self.head_epochs), ("top", self.top_epochs), ("features", self.features_epochs)]
        for name, length in bounds:
            if epoch < length:
                return name
            epoch -= length
        return "features"


def _uniform(generator: torch.Generator, bound: float) -> float:
    """One draw from U[-bound, bound]."""
    return float((torch.rand((), generator=generator) * 2 - 1) * bound)


def _transform(img: torch.Tensor, flip: bool, angle: float, shear: float,
               interpolation: InterpolationMode) -> torch.Tensor:
    """Vertical flip (if drawn) then the affine map, black fill, for one (C, H, W) image."""
    if flip:
        img = TF.vertical_flip(img)
    return TF.affine(img, angle=angle, translate=[0, 0], scale=1.0, shear=[shear, 0.0],
                     interpolation=interpolation, fill=0.0)


def study_augment(x: torch.Tensor, generator: torch.Generator, mask: torch.Tensor | None = None,
                  schedule: StudySchedule | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The study's augmentation per image of a (B, C, H, W) batch: random vertical flip, then rotation and x-shear.

    Bilinear for images, nearest for the mask, which gets its image's transform; returns (images, masks) if given.
    """
    s = schedule or StudySchedule()
    images, masks = [], []
    for i in range(x.shape[0]):
        flip = bool(torch.rand((), generator=generator) < s.vflip_p)
        angle, shear = _uniform(generator, s.max_rotation), _uniform(generator, s.max_shear)
        images.append(_transform(x[i], flip, angle, shear, InterpolationMode.BILINEAR))
        if mask is not None:
            masks.append(_transform(mask[i], flip, angle, shear, InterpolationMode.NEAREST))
    out = torch.stack(images)
    return out if mask is None else (out, torch.stack(masks))
