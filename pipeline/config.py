"""Typed configuration: params.yaml is read here and nowhere else.

Every component gets one frozen dataclass. `load_params()` turns the YAML mapping into
those dataclasses and rejects, before any work starts, unknown keys, wrong types and
out-of-range values with one message that names the dotted key and what is allowed.

Numbers written by `dvc exp run -S lr=2e-4` may reach us as strings (YAML 1.1 reads
`2e-4` as a string); float fields therefore accept numeric strings and coerce them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.validation import (
    N_DOWN,
    N_RES,
    SEED,
    UNET_LEVELS,
    in_range,
    require,
    short_repr,
)

DEFAULT_PARAMS = Path("params.yaml")
# Where a `folder` source's images and the model files to fine-tune from live: dvc.yaml lists
# these folders as dependencies (of source/images and of both training stages), so DVC
# re-runs what reads them when a file in them changes. A path elsewhere would be invisible.
OWN_DATA_DIR = "data/own"
INIT_MODELS_DIR = "models/init"


class ParamsError(ValueError):
    """A params.yaml value is missing, unknown, mistyped or out of range."""


# --------------------------------------------------------------------------- source


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the generated mini-Danbooru2020."""

    seed: int = 2020
    n_color: int = 600  # colored illustrations (rating s, no monochrome tags)
    n_scan: int = 600  # line-art scans (monochrome/greyscale/lineart)
    n_distractors: int = 120  # comic/4koma/photo/q-e/deleted/non-image/corrupt posts
    n_shards: int = 16  # metadata shards, named 2020000000000000 ...
    canvas: int = 512  # side of the 512px subset
    duplicate_fraction: float = 0.02  # records repeated in a second shard (older snapshot)
    cast_size: int = 8  # recurring characters with fixed colors (0: every figure a one-off)

    def validate(self, key: str) -> None:
        _check_seed(self.seed, f"{key}.seed")
        _check(self.n_color >= 1, f"{key}.n_color", "an integer >= 1", self.n_color)
        _check(self.n_scan >= 1, f"{key}.n_scan", "an integer >= 1", self.n_scan)
        _check(self.n_distractors >= 0, f"{key}.n_distractors", "an integer >= 0", self.n_distractors)
        _check(1 <= self.n_shards <= 100, f"{key}.n_shards", "an integer in [1, 100]", self.n_shards)
        _check(64 <= self.canvas <= 4096, f"{key}.canvas", "an integer in [64, 4096]", self.canvas)
        _check(0 <= self.duplicate_fraction <= 0.5, f"{key}.duplicate_fraction", "a number in [0, 0.5]",
               self.duplicate_fraction)
        _check(0 <= self.cast_size <= 1000, f"{key}.cast_size", "an integer in [0, 1000]", self.cast_size)


@dataclass(frozen=True)
class HttpConfig:
    """Network behaviour of the HTTP(S) mirror and API sources."""

    timeout_s: float = 30.0
    retries: int = 5
    backoff_s: float = 1.0  # first retry delay; doubles each retry, capped at max_backoff_s
    max_backoff_s: float = 60.0
    concurrency: int = 8
    user_agent: str = "onepunchgan-pipeline/0.1 (Danbooru2020 colorization research)"

    def validate(self, key: str) -> None:
        _check(self.timeout_s > 0, f"{key}.timeout_s", "a number > 0", self.timeout_s)
        _check(0 <= self.retries <= 50, f"{key}.retries", "an integer in [0, 50]", self.retries)
        _check(self.backoff_s >= 0, f"{key}.backoff_s", "a number >= 0", self.backoff_s)
        _check(self.max_backoff_s >= self.backoff_s, f"{key}.max_backoff_s", "a number >= backoff_s",
               self.max_backoff_s)
        _check(1 <= self.concurrency <= 64, f"{key}.concurrency", "an integer in [1, 64]", self.concurrency)
        _check(bool(self.user_agent.strip()), f"{key}.user_agent", "a non-empty string", self.user_agent)


@dataclass(frozen=True)
class ApiConfig:
    """The live Danbooru JSON API (`/posts.json`)."""

    tags: str = ""  # Danbooru search string, at most two tags for anonymous users
    max_posts: int = 1000
    start_id: int = 0  # 0: newest first; else fetch posts with id < start_id
    requests_per_s: float = 2.0

    def validate(self, key: str) -> None:
        _check(self.max_posts >= 1, f"{key}.max_posts", "an integer >= 1", self.max_posts)
        _check(self.start_id >= 0, f"{key}.start_id", "an integer >= 0", self.start_id)
        _check(0 < self.requests_per_s <= 10, f"{key}.requests_per_s", "a number in (0, 10]",
               self.requests_per_s)


@dataclass(frozen=True)
class SourceConfig:
    kind: Literal["synthetic", "local", "http", "danbooru_api", "folder"] = "synthetic"
    # local: the mirror's root folder (holding metadata/, 512px/, original/); folder: the
    # folder of your own images, under OWN_DATA_DIR
    root: str = ""
    # http: base URL of a mirror with the Danbooru2020 layout; danbooru_api: the site
    url: str = ""
    image_variant: Literal["512px", "original"] = "512px"
    # names of metadata files under <root>/metadata; empty: every file found there
    metadata_files: list[str] = field(default_factory=list)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    api: ApiConfig = field(default_factory=ApiConfig)

    def validate(self, key: str) -> None:
        if self.kind in ("http", "danbooru_api"):
            _check(bool(re.match(r"^https?://[^/\s]+", self.url)), f"{key}.url",
                   "an http:// or https:// URL when source.kind is " + self.kind, redact_url(self.url))
        if self.kind == "local":
            _check(bool(self.root.strip()), f"{key}.root",
                   "the path of a local Danbooru2020 mirror when source.kind is local", self.root)
        if self.kind == "folder":
            _check(inside(self.root, OWN_DATA_DIR), f"{key}.root",
                   f"a folder under {OWN_DATA_DIR}/ when source.kind is folder, e.g. {OWN_DATA_DIR}/my-series "
                   f"(dvc.yaml lists {OWN_DATA_DIR} as a dependency, so DVC sees when your images change; "
                   f"move or copy them there)", self.root)
        for name in self.metadata_files:
            _check(_SAFE_NAME.match(name) is not None, f"{key}.metadata_files",
                   "plain file names (letters, digits, . _ -), no folders", name)


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class MetadataConfig:
    block_mb: int = 32  # bytes of JSON lines parsed per batch: bounds memory
    dedupe_buckets: int = 0  # 0: chosen from the input size

    def validate(self, key: str) -> None:
        _check(1 <= self.block_mb <= 512, f"{key}.block_mb", "an integer in [1, 512]", self.block_mb)
        _check(0 <= self.dedupe_buckets <= 4096, f"{key}.dedupe_buckets", "an integer in [0, 4096]",
               self.dedupe_buckets)


# --------------------------------------------------------------------------- select


@dataclass(frozen=True)
class DomainRules:
    """Tag rules of one domain. Tags match exactly (`partially_monochrome` != `monochrome`)."""

    include_any: list[str] = field(default_factory=list)  # at least one of these (empty: no constraint)
    include_all: list[str] = field(default_factory=list)  # every one of these
    exclude: list[str] = field(default_factory=list)  # none of these

    def validate(self, key: str) -> None:
        for name in ("include_any", "include_all", "exclude"):
            for tag in getattr(self, name):
                _check(bool(tag) and tag == tag.strip() and " " not in tag, f"{key}.{name}",
                       "Danbooru tag names without spaces (use _)", tag)


_SCAN_TAGS = ["monochrome", "greyscale", "lineart", "sketch"]
# posts that are neither plain color nor plain line art, or not drawings
_NEITHER = ["comic", "4koma", "2koma", "photo_(medium)", "partially_colored", "partially_monochrome", "spot_color"]


@dataclass(frozen=True)
class SelectConfig:
    scan: DomainRules = field(default_factory=lambda: DomainRules(
        include_any=list(_SCAN_TAGS), exclude=_NEITHER + ["colorized", "text_focus", "3d", "pixel_art"]))
    color: DomainRules = field(default_factory=lambda: DomainRules(
        exclude=_SCAN_TAGS + ["partially_colored", "spot_color", "sepia", "partially_monochrome", "comic", "4koma",
                              "2koma", "photo_(medium)", "3d", "pixel_art", "text_focus"]))
    ratings: list[str] = field(default_factory=lambda: ["s"])
    file_ext: list[str] = field(default_factory=lambda: ["jpg", "jpeg", "png"])
    min_side: int = 256  # of the original image_width/image_height
    min_aspect: float = 0.5  # width / height
    max_aspect: float = 2.0
    drop_deleted: bool = True
    drop_banned: bool = True
    holdout_fraction: float = 0.1
    split_seed: int = 0
    max_per_domain: int = 0  # 0: no cap

    def validate(self, key: str) -> None:
        for r in self.ratings:
            _check(r in ("s", "q", "e"), f"{key}.ratings", "a list drawn from s, q, e", r)
        for ext in self.file_ext:
            _check(re.fullmatch(r"[a-z0-9]{1,5}", ext) is not None, f"{key}.file_ext",
                   "lower-case extensions without dots, like jpg", ext)
        _check(self.min_side >= 0, f"{key}.min_side", "an integer >= 0", self.min_side)
        _check(0 < self.min_aspect <= self.max_aspect, f"{key}.min_aspect",
               "a number > 0 and <= max_aspect", self.min_aspect)
        _check(0 <= self.holdout_fraction < 1, f"{key}.holdout_fraction", "a number in [0, 1)",
               self.holdout_fraction)
        _check(self.max_per_domain >= 0, f"{key}.max_per_domain", "an integer >= 0", self.max_per_domain)
        _check_seed(self.split_seed, f"{key}.split_seed")
        self.scan.validate(f"{key}.scan")
        self.color.validate(f"{key}.color")


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImagesConfig:
    size: int = 256  # side of the square training images (page scale: 2-5 px lines)
    fit: Literal["pad", "crop"] = "pad"  # pad with white to a square, or centre-crop
    shard_images: int = 1024  # images per packed shard (also the unit of resume)
    workers: int = 0  # 0: one per CPU core
    max_pixels: int = 100_000_000  # decompression-bomb cap: larger images are rejected
    allow_truncated: bool = False  # decode truncated files as far as they go instead of rejecting

    def validate(self, key: str) -> None:
        _check(8 <= self.size <= 2048, f"{key}.size", "an integer in [8, 2048]", self.size)
        _check(1 <= self.shard_images <= 1_000_000, f"{key}.shard_images", "an integer >= 1",
               self.shard_images)
        _check(0 <= self.workers <= 256, f"{key}.workers", "an integer in [0, 256]", self.workers)
        _check(self.max_pixels >= 1, f"{key}.max_pixels", "an integer >= 1", self.max_pixels)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainingLoopConfig:
    """What both GAN stages share: schedule, Adam betas, augmentation, logging, device."""

    steps: int = 1000
    batch_size: int = 8
    # side of the random crop each sample is cut to from its page-scale image (0: the
    # whole prepared image): the networks learn at a real page's line widths, at the cost
    # of a small image, and run fully convolutionally on whole pages
    crop: int = 0
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # fraction of steps before the linear lr decay starts
    flip: bool = True
    rotate_deg: float = 5.0
    shift: float = 0.06
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 100
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # torch.compile every trained network (forward and backward, under DDP's bucketing when
    # several ranks train): "none" (eager), or a torch.compile mode; the GPU configs use
    # "max-autotune-no-cudagraphs" (benchmarks/bench_train.py measures the gain)
    compile: Literal["none", "default", "max-autotune-no-cudagraphs"] = "none"
    eval_batch: int = 64
    # fine-tuning: a published model file (under INIT_MODELS_DIR) whose weights the
    # generator starts from; its architecture must match these params. "": random init.
    # With a model to start from, steps may be 0: the file is published as it is.
    init_from: str = ""

    def _validate_loop(self, key: str, counts: tuple[str, ...], non_negative: tuple[str, ...]) -> None:
        for name in counts + ("batch_size", "eval_batch", "log_every", "sample_every", "checkpoint_every"):
            _check(getattr(self, name) >= 1, f"{key}.{name}", "an integer >= 1", getattr(self, name))
        if self.init_from:
            _check(inside(self.init_from, INIT_MODELS_DIR) and self.init_from.endswith(".pt"), f"{key}.init_from",
                   f"\"\" or a model file under {INIT_MODELS_DIR}/, e.g. {INIT_MODELS_DIR}/colorizer.pt (dvc.yaml "
                   f"lists {INIT_MODELS_DIR} as a dependency of the training stages; copy the file there, "
                   f"or `dvc get REPO models/NAME.pt -o {INIT_MODELS_DIR}/NAME.pt`)", self.init_from)
            _check(self.steps >= 0, f"{key}.steps", "an integer >= 0 (0 with init_from: publish it as is)",
                   self.steps)
        else:
            _check(self.steps >= 1, f"{key}.steps", "an integer >= 1 (0 only with init_from)", self.steps)
        for name in non_negative:
            _check(getattr(self, name) >= 0, f"{key}.{name}", "a number >= 0", getattr(self, name))
        _check(self.crop == 0 or 16 <= self.crop <= 4096, f"{key}.crop", "0 (no crop) or an integer in [16, 4096]",
               self.crop)
        _check(0 <= self.beta1 < 1, f"{key}.beta1", "a number in [0, 1)", self.beta1)
        _check(0 <= self.beta2 < 1, f"{key}.beta2", "a number in [0, 1)", self.beta2)
        _check(0 <= self.decay_start <= 1, f"{key}.decay_start", "a number in [0, 1]", self.decay_start)
        _check(0 <= self.rotate_deg <= 45, f"{key}.rotate_deg", "a number in [0, 45]", self.rotate_deg)
        _check(0 <= self.shift <= 0.5, f"{key}.shift", "a number in [0, 0.5]", self.shift)


@dataclass(frozen=True)
class CycleGANConfig(TrainingLoopConfig):
    """The scan generator: CycleGAN with deliberately weak generators (params: cyclegan.*)."""

    steps: int = 1200
    batch_size: int = 8
    crop: int = 64
    eval_batch: int = 16
    generator_width: int = 8  # channels after the stem; doubles per downsampling
    n_down: int = 2
    n_res: int = 2
    disc_width: int = 16
    disc_attention: bool = True
    # D_scan also sees tanh(gain · high-pass) of each scan, where a generated scan's faint
    # texture on paper is amplified (lines saturate at ±1) and flat paper stays 0 (0: off)
    disc_scan_highpass: float = 0.0
    groups: int = 8  # GroupNorm groups
    generator_skip: bool = True  # generators learn a residual over greyscale / repeated scan
    # G_scan's white point: lightness (of [0, 1]) from which its scans are paper white (1.0: none)
    scan_white_point: float = 1.0
    lambda_cycle: float = 2.5  # λ, each way (the CycleGAN paper: 10; 2.5 measured better here)
    lambda_identity: float = 0.5  # × λ
    # weight of a loss pushing G_scan's scans to ink or paper (mean of 1 - |x| in [-1, 1]):
    # true scans are nearly binary (lines, dots, white paper), generated ones grey (0: off)
    lambda_binary: float = 0.0
    # σ of Gaussian noise on G_scan's output before G_color reconstructs the color image:
    # without it G_scan hides the colors in faint high-frequency patterns (the cycle
    # "steganography" of Chu et al. 2017) instead of drawing clean line art
    cycle_noise: float = 0.6
    pool_size: int = 50

    def validate(self, key: str) -> None:
        self._validate_loop(key, ("generator_width", "disc_width", "groups"), ("lambda_cycle", "lambda_identity"))
        _check(N_DOWN[0] <= self.n_down <= N_DOWN[1], f"{key}.n_down", in_range(N_DOWN), self.n_down)
        _check(N_RES[0] <= self.n_res <= N_RES[1], f"{key}.n_res", in_range(N_RES), self.n_res)
        _check(0 <= self.cycle_noise <= 2, f"{key}.cycle_noise", "a number in [0, 2]", self.cycle_noise)
        _check(0.5 <= self.scan_white_point <= 1, f"{key}.scan_white_point", "a number in [0.5, 1]",
               self.scan_white_point)
        _check(0 <= self.pool_size <= 1000, f"{key}.pool_size", "an integer in [0, 1000]", self.pool_size)
        _check(0 <= self.lambda_binary <= 100, f"{key}.lambda_binary", "a number in [0, 100]", self.lambda_binary)
        _check(0 <= self.disc_scan_highpass <= 100, f"{key}.disc_scan_highpass", "a number in [0, 100]",
               self.disc_scan_highpass)


@dataclass(frozen=True)
class ColorizerConfig(TrainingLoopConfig):
    """The colorizer: attention U-Net cGAN on (scan, color) pairs (params: colorizer.*)."""

    steps: int = 1000
    batch_size: int = 8
    crop: int = 64
    eval_batch: int = 16
    width: int = 16
    mults: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    n_attention: int = 3
    groups: int = 8
    input_skip: bool = True
    disc_width: int = 16
    disc_attention: bool = True
    conditional: bool = True  # D sees (scan, color); false: color only, as in the original
    disc_spectral_norm: bool = True  # spectral norm on every convolution of D
    gan_loss: Literal["lsgan", "hinge"] = "lsgan"
    lambda_l1: float = 100.0
    lambda_fm: float = 10.0  # weight of pix2pixHD feature matching on D's activations (0: off)
    # L1 on the page as composed (`colorist.ink.composite_factor`: the scan's ink and its
    # descreened tone multiplied over the output), not on the bare color layer (the method's
    # colorizer only: the greyscale baseline's inputs carry no ink)
    composite_l1: bool = True
    # the space the L1 is taken in: rgb (pix2pix) | lab (CIE Lab over 50, near the ΔE the
    # evaluation measures) | de2000 (the evaluation's CIEDE2000 per pixel, over 50); both
    # colorizers, so the thesis test compares like with like
    l1_space: Literal["rgb", "lab", "de2000"] = "lab"
    # share of training scans re-inked as clean lines + screentone (`training.scan_style`):
    # the generated scan's grey shading, which true scans do not carry, hidden from the
    # colorizer (the method's colorizer only: greyscale copies are no scans to re-ink)
    scan_style: float = 0.0
    g_lr_mult: float = 1.0  # generator lr = lr * g_lr_mult
    d_lr_mult: float = 1.0  # discriminator lr = lr * d_lr_mult
    # publish a running average of G's weights (exponential, this decay per step; Polyak
    # averaging as in ProGAN / StyleGAN) instead of its last weights; 0: off
    ema: float = 0.0
    # progressive resolution: train at these sizes in equal shares of the steps (the last
    # must be the training size: crop, or the prepared size); empty: that size throughout
    progressive_sizes: list[int] = field(default_factory=list)
    # color hints (pipeline.training.hint_sampler): per training sample a geometric number of hints,
    # P(k) = hints_p (1 - hints_p)^k capped at hints_max, each a square patch of side
    # 1..hint_patch carrying the target's mean color. hints_max 0: no hint channels at all
    # (the plain OnePunchGAN colorizer).
    hints_p: float = 0.3
    hints_max: int = 32
    hint_patch: int = 5
    # share of training hints given a random color, the target recolored to match over the
    # hint's region: teaches obeying a hint that disagrees, inside its region only
    hint_recolor: float = 0.5

    def validate(self, key: str) -> None:
        self._validate_loop(key, ("width", "groups", "disc_width"), ("lambda_l1", "lambda_fm", "g_lr_mult",
                                                                      "d_lr_mult"))
        _check(0 < self.hints_p <= 1, f"{key}.hints_p", "a probability in (0, 1]", self.hints_p)
        _check(0 <= self.hints_max <= 1000, f"{key}.hints_max", "an integer in [0, 1000] (0: no hints)",
               self.hints_max)
        _check(1 <= self.hint_patch <= 64, f"{key}.hint_patch", "an integer in [1, 64]", self.hint_patch)
        _check(0 <= self.hint_recolor <= 1, f"{key}.hint_recolor", "a share in [0, 1]", self.hint_recolor)
        _check(0 <= self.scan_style <= 1, f"{key}.scan_style", "a share in [0, 1]", self.scan_style)
        _check(0 <= self.ema < 1, f"{key}.ema", "a decay per step in [0, 1), e.g. 0.995 (0: off)", self.ema)
        _check(UNET_LEVELS[0] <= len(self.mults) <= UNET_LEVELS[1] and all(m >= 1 for m in self.mults),
               f"{key}.mults", f"{UNET_LEVELS[0]} to {UNET_LEVELS[1]} integers >= 1", self.mults)
        _check(0 <= self.n_attention <= 2 * len(self.mults), f"{key}.n_attention",
               "an integer in [0, 2 * len(mults)]", self.n_attention)
        _check(all(8 <= s <= 4096 for s in self.progressive_sizes), f"{key}.progressive_sizes",
               "sizes in [8, 4096]", self.progressive_sizes)
        _check(list(self.progressive_sizes) == sorted(self.progressive_sizes), f"{key}.progressive_sizes",
               "increasing sizes, e.g. [64, 128, 256]", self.progressive_sizes)


# --------------------------------------------------------------------------- all params


@dataclass(frozen=True)
class Params:
    lr: float = 2e-4  # base learning rate of the GAN stages (`dvc exp run -S lr=...`)
    seed: int = 0
    source: SourceConfig = field(default_factory=SourceConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    cyclegan: CycleGANConfig = field(default_factory=CycleGANConfig)
    colorizer: ColorizerConfig = field(default_factory=ColorizerConfig)

    def validate(self, key: str = "") -> None:
        _check(0 < self.lr < 1, "lr", "a number in (0, 1)", self.lr)
        _check_seed(self.seed, "seed")
        for name in ("cyclegan", "colorizer"):  # cross-key: crops come out of the prepared images
            crop = getattr(self, name).crop
            if crop > self.images.size:
                raise ParamsError(f"{name}.crop = {crop} but images.size = {self.images.size}: a crop must fit "
                                  "in the prepared image (lower the crop, raise images.size, or 0 for none)")
        # cross-key: the colorizer's last progressive size is the size it trains at
        sizes = self.colorizer.progressive_sizes
        train_size = self.colorizer.crop or self.images.size
        if sizes and sizes[-1] != train_size:
            what = f"colorizer.crop = {train_size}" if self.colorizer.crop else f"images.size = {train_size}"
            raise ParamsError(f"colorizer.progressive_sizes[-1] = {sizes[-1]} but {what}: "
                              "the last size must be the training size")


# --------------------------------------------------------------------------- loading


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml; raise ParamsError naming the file or the bad key,
    in one line (FileNotFoundError when there is no such file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found (run from the project root)")
    from ruamel.yaml import YAML, YAMLError

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read the params file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ParamsError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); "
                          "save the params file as UTF-8") from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {_yaml_error(exc)}") from None
    except RecursionError:
        raise ParamsError(f"{path}: not valid params: nested too deeply") from None
    except ValueError as exc:  # a value YAML parses but Python cannot build: a date 2020-13-45, a 5000-digit int
        why = str(exc).partition("\n")[0].partition("; use sys.")[0]  # not Python's advice to raise its limit
        raise ParamsError(f"{path}: not valid params: {why}") from None
    if data is None:  # empty, or comments only: every default
        data = {}
    return params_from_dict(data, source=str(path))


def _yaml_error(exc: Exception) -> str:
    """ruamel's multi-line message (context, snippet, caret) as one line with 1-based positions."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if problem and mark is not None:
        context = getattr(exc, "context", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return f"{where}: {problem}" + (f" ({context})" if context else "")
    first = str(exc).split("\n")[0].strip()  # e.g. ReaderError: unacceptable character #x0000 ...
    position = getattr(exc, "position", None)
    return f"{first} (character {position + 1})" if isinstance(position, int) else first


def params_from_dict(data: Any, source: str = "params") -> Params:
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level")
    _check_size(data, source)
    return build(Params, data, "")


# params.yaml holds a few hundred values; YAML aliases of aliases (`b: [*a, *a, ...]`, a "billion
# laughs") can make a file of a few lines stand for 10**9 of them, which every walk over the
# values (DVC's, a message's repr) would expand
MAX_PARAMS_VALUES = 100_000


def _check_size(data: dict, source: str) -> None:
    """Refuse data standing for more than MAX_PARAMS_VALUES values, naming the top-level key;
    stops counting there, so a billion laughs costs what a normal file does."""
    count = 0
    for top, value in data.items():
        stack = [value]
        while stack:
            node = stack.pop()
            count += 1
            if count > MAX_PARAMS_VALUES:
                raise ParamsError(f"{source}: params key {_shown(top)} "
                                  f"stands for more than {MAX_PARAMS_VALUES} values (YAML aliases of aliases?); "
                                  "write the values out, without anchors (&) and aliases (*)")
            if isinstance(node, dict):
                stack.extend(node.keys())
                stack.extend(node.values())
            elif isinstance(node, (list, tuple)):
                stack.extend(node)


def build(cls: type, data: Any, key: str) -> Any:
    """Build dataclass `cls` from a mapping, checking keys and types recursively."""
    where = key or "top level"
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if not isinstance(name, str):  # `1: foo`, `true: x`, `~: x`, `? [1, 2]`: YAML reads these as non-strings
            at = f"params key {key}.{short_repr(name)}" if key else f"params key {short_repr(name)} at the top level"
            raise ParamsError(f"{at} is {_KEY_TYPES.get(type(name), type(name).__name__)}, not a name; "
                              f"allowed keys here: {', '.join(fields)}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        dotted = ", ".join(_join(key, _shown(u)) for u in unknown[:3])
        dotted += f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise ParamsError(f"unknown params key {dotted}; allowed keys here: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, _join(key, name))
    obj = cls(**values)
    obj.validate(key) if key else obj.validate()
    # nested configs validate themselves through the recursion above
    return obj


_KEY_TYPES = {int: "an integer", bool: "a boolean", float: "a number", type(None): "null", tuple: "a sequence"}


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value if value is not None else {}, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ParamsError(f"{key} = {short_repr(value)}: allowed values are {', '.join(map(str, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ParamsError(f"{key} = {short_repr(value)}: expected a list")
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key} = {short_repr(value)}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key} = {short_repr(value)}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise ParamsError(f"{key} = {short_repr(value)}: expected a number")
        number = None
        if isinstance(value, float):
            number = value
        elif isinstance(value, int):
            number = float(value) if abs(value) < 2**1023 else math.inf  # float() of a longer int overflows
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ParamsError(f"{key} = {short_repr(value)}: expected a number")
        if not math.isfinite(number):  # .inf / .nan / 'nan' pass every `>= 0` style range check below
            raise ParamsError(f"{key} = {short_repr(value)}: expected a finite number")
        return number
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ParamsError(f"{key} = {short_repr(value)}: expected a string")
        return value
    raise AssertionError(f"unsupported config type {tp!r} for {key}")


def inside(path: str, folder: str) -> bool:
    """Is `path` (relative, project-root based) `folder` itself or below it, with no `..`?"""
    parts = Path(path.strip()).parts
    top = Path(folder).parts
    return bool(path.strip()) and not Path(path).is_absolute() and ".." not in parts \
        and tuple(parts[:len(top)]) == top


def _check(ok: bool, key: str, allowed: str, value: Any) -> None:
    require(ok, key, allowed, value, error=ParamsError)


def _check_seed(seed: int, key: str) -> None:
    """Seeds stay in SEED (pipeline.validation says why: RNG limits, offsets, aliasing)."""
    _check(SEED[0] <= seed <= SEED[1], key, in_range(SEED) + " (2**31 - 1)", seed)


def _shown(name: Any) -> str:
    """A key as messages show it: a name as it is (cut to 80 characters), anything else as its repr."""
    if isinstance(name, str):
        return name if len(name) <= 80 else name[:77] + "..."
    return short_repr(name)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def redact_url(url: str) -> str:
    """Hide user:password@ in URLs before they reach a message or a log."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", url)
