"""Color priors of the synthetic mini-Danbooru2020: what colors anime art actually uses.

A benchmark whose hues are uniformly random rewards grey (the L1 optimum is the mean color)
and cannot tell a good colorizer from a bad one. Real anime art has structure a colorizer
learns, and this module gives the synthetic art the same:
- hair and eye colors drawn with Danbooru-like frequencies (the weights are the rough sizes,
  in thousands of posts, of Danbooru's `*_hair` / `*_eyes` general tags around 2020);
- skin in a narrow range; clothes, ribbons, props and floors by kind (balls are red or blue,
  stars yellow, grass green); skies blue, indoor walls cream;
- a cast of recurring characters (`make_cast`) who keep their colors from picture to picture;
- the manga inking convention (`ink_tone`): the scan carries a color's lightness, a dark
  color inked solid black or dense tone, a mid-tone as light tone, a light color left white.

Also the ceiling the benchmark reports (`oracle_fill`): the mean color of each material at
each ink level, what a colorizer that recognises materials, and nothing more, would paint.
Used by `scenes` (colors and tones of every region) and `scene_images` (backgrounds, oracle).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# name -> (sRGB centre, weight). Weights: approximate Danbooru tag counts (thousands).
HAIR = {
    "brown": ((118, 78, 50), 530), "black": ((34, 32, 40), 440), "blonde": ((244, 218, 140), 440),
    "blue": ((66, 108, 200), 230), "pink": ((244, 168, 194), 200), "white": ((238, 238, 244), 200),
    "purple": ((138, 98, 180), 190), "red": ((188, 48, 50), 170), "silver": ((196, 202, 214), 130),
    "grey": ((138, 138, 148), 110), "green": ((88, 160, 100), 110), "orange": ((240, 148, 60), 80),
    "aqua": ((98, 208, 218), 60),
}
EYES = {
    "blue": ((58, 108, 210), 640), "red": ((198, 38, 50), 500), "brown": ((128, 78, 44), 360),
    "green": ((58, 158, 80), 270), "purple": ((138, 78, 190), 240), "yellow": ((234, 188, 50), 210),
    "black": ((40, 38, 46), 120), "orange": ((238, 128, 40), 70), "pink": ((238, 118, 168), 70),
    "aqua": ((58, 198, 210), 60),
}
CLOTH = {  # school uniforms dominate: white shirts, navy and black blazers
    "white": ((244, 244, 246), 3.0), "navy": ((36, 46, 92), 2.5), "black": ((38, 36, 42), 2.0),
    "red": ((196, 52, 58), 1.5), "blue": ((70, 118, 206), 1.5), "grey": ((150, 150, 158), 1.0),
    "pink": ((240, 160, 186), 1.0), "brown": ((132, 90, 60), 1.0), "green": ((70, 140, 90), 0.8),
    "yellow": ((240, 210, 90), 0.6),
}
ACCENT = {  # ribbons, bows, hats
    "red": ((214, 40, 56), 3.0), "pink": ((244, 140, 180), 2.0), "blue": ((60, 110, 214), 1.5),
    "yellow": ((246, 206, 60), 1.0), "white": ((246, 246, 248), 1.0), "black": ((36, 34, 40), 1.0),
    "purple": ((150, 90, 200), 0.8),
}
SKIN = {"fair": ((255, 228, 212), 8.0), "tan": ((232, 188, 156), 1.0)}
OBJECTS = {  # props by kind
    "ball": {"red": ((214, 50, 50), 2.0), "blue": ((60, 110, 214), 1.5), "orange": ((244, 150, 50), 1.0),
             "white": ((244, 244, 246), 0.7)},
    "star": {"yellow": ((250, 214, 60), 4.0), "orange": ((246, 160, 50), 1.0)},
    "box": {"red": ((206, 50, 62), 2.0), "pink": ((240, 150, 186), 1.5), "blue": ((70, 120, 210), 1.5),
            "green": ((70, 150, 90), 1.0), "purple": ((140, 90, 190), 0.7)},
    "flower": {"pink": ((246, 160, 196), 2.0), "red": ((214, 40, 60), 1.5), "yellow": ((248, 214, 70), 1.2),
               "white": ((246, 246, 246), 1.0), "purple": ((160, 110, 210), 0.8)},
    "flower_centre": {"yellow": ((246, 200, 50), 1.0)},
    "fruit": {"red": ((200, 36, 46), 2.0), "orange": ((246, 150, 40), 1.5), "green": ((130, 190, 70), 1.0),
              "purple": ((110, 60, 140), 0.7)},
}
GROUND = {"grass": ((108, 168, 80), 2.0), "wood": ((176, 126, 80), 2.0), "stone": ((168, 164, 160), 1.0),
          "sand": ((226, 206, 160), 0.8)}
SIMPLE_BACKGROUND = {  # flat backdrops (Danbooru's simple_background): pastels
    "cream": ((248, 238, 214), 2.0), "light_blue": ((200, 226, 248), 2.0), "pink": ((250, 218, 228), 1.5),
    "lavender": ((226, 216, 244), 1.0), "grey": ((214, 214, 218), 1.0), "mint": ((210, 240, 222), 0.8),
}
GRADIENT_BACKGROUND = {  # two-color backdrops: mostly sky
    "sky": (((120, 178, 240), (218, 236, 252)), 4.0), "sunset": (((246, 160, 90), (250, 206, 220)), 1.0),
    "pastel": (((250, 218, 228), (210, 226, 250)), 1.0),
}
PUPIL = (24, 22, 28)
EYE_WHITE = (250, 250, 252)
SHINE = (255, 255, 255)

JITTER = 12.0  # sRGB std of a color's brightness around its centre: artists' shades of one name


def pick(rng: np.random.Generator, table: dict) -> str:
    names = list(table)
    p = np.array([table[n][1] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def jittered(rng: np.random.Generator, rgb, jitter: float = JITTER) -> np.ndarray:
    """rgb made lighter or darker by about `jitter`, its hue shifted by a third of that."""
    shift = rng.normal(0, jitter) + rng.normal(0, jitter / 3, 3)
    return np.clip(np.asarray(rgb, dtype=np.float64) + shift, 0, 255)


def draw_color(rng: np.random.Generator, table: dict, jitter: float = JITTER) -> tuple[str, np.ndarray]:
    """(name, sRGB float color) drawn from a prior table."""
    name = pick(rng, table)
    return name, jittered(rng, table[name][0], jitter)


# --------------------------------------------------------------------------- ink convention


def lightness(rgb) -> float:
    """CIE L* (0-100) of an sRGB color (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = float(lin @ np.array([0.2126, 0.7152, 0.0722]))
    return 116 * (y ** (1 / 3) if y > 216 / 24389 else (24389 / 27 * y + 16) / 116) - 16


INK_LEVELS = ("white", "light", "dense", "black")
_LEVEL_FLOOR = (72.0, 52.0, 32.0)  # L* at or above which a color is white / light tone / dense tone


def ink_level(rgb) -> str:
    """How manga inks this color: black, dense tone, light tone or left white."""
    lum = lightness(rgb)
    for level, floor in zip(INK_LEVELS, _LEVEL_FLOOR):
        if lum >= floor:
            return level
    return "black"


def ink_tone(level: str, style: str) -> str:
    """The Region.tone of an ink level in one artist's style ('dots' screentone or 'hatch')."""
    if level == "white":
        return "none"
    if level == "black":
        return "black"
    if style == "dots":
        return "dots" if level == "light" else "dots_dense"
    return "hatch" if level == "light" else "crosshatch"


# --------------------------------------------------------------------------- recurring characters


@dataclass(frozen=True)
class CharacterLook:
    """What stays fixed about a recurring character: colors, hair length, ears, headwear."""

    name: str
    hair: str
    eyes: str
    cloth: str
    accent: str
    colors: tuple[tuple[float, float, float], ...]  # hair, iris, cloth, accent (sRGB)
    skin: tuple[float, float, float]
    long_hair: bool
    animal_ears: bool
    headwear: str  # none, bow, hat

    def color(self, part: str) -> np.ndarray:
        return np.array(self.colors[("hair", "iris", "cloth", "accent").index(part)])


def random_look(rng: np.random.Generator, name: str = "") -> CharacterLook:
    """A character drawn from the priors (a one-off, or a cast member)."""
    hair, hair_rgb = draw_color(rng, HAIR)
    eyes, eye_rgb = draw_color(rng, EYES)
    cloth, cloth_rgb = draw_color(rng, CLOTH)
    accent, accent_rgb = draw_color(rng, ACCENT)
    _, skin = draw_color(rng, SKIN, 4.0)
    headwear = str(rng.choice(["bow", "hat", "none"], p=[0.45, 0.14, 0.41]))
    return CharacterLook(name, hair, eyes, cloth, accent,
                         tuple(tuple(float(v) for v in c) for c in (hair_rgb, eye_rgb, cloth_rgb, accent_rgb)),
                         tuple(float(v) for v in skin), bool(rng.random() < 0.55), bool(rng.random() < 0.2),
                         headwear)


@functools.lru_cache(maxsize=16)
def make_cast(seed: int, size: int) -> tuple[CharacterLook, ...]:
    """A series' fixed cast: `size` characters drawn from the priors, deterministic in seed."""
    rng = np.random.default_rng([int(seed) % 2**63, 77])
    return tuple(random_look(rng, f"character_{k + 1}") for k in range(size))


# --------------------------------------------------------------------------- oracle ceiling


def _samples(table: dict, n: int, rng: np.random.Generator, jitter: float) -> np.ndarray:
    return np.stack([draw_color(rng, table, jitter)[1] for _ in range(n)])


def _lab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, dtype=np.float64).reshape(-1, 1, 3) / 255).reshape(-1, 3)


def _rgb(lab: np.ndarray) -> np.ndarray:
    from skimage.color import lab2rgb

    return lab2rgb(np.asarray(lab, dtype=np.float64).reshape(-1, 1, 3)).reshape(-1, 3) * 255


MATERIAL_TABLES = {"hair": HAIR, "iris": EYES, "cloth": CLOTH, "accent": ACCENT, "skin": SKIN,
                   "ground": GROUND, "object": {k: v for t in ("ball", "star", "box", "flower", "fruit")
                                                for k, v in OBJECTS[t].items()}}


@functools.lru_cache(maxsize=1)
def oracle_table() -> dict[tuple[str, str], np.ndarray]:
    """(material, ink level) -> the mean color (in CIELAB) of that material's prior at that level.

    The best single color for a region, knowing its material and how the scan inks it but
    not which character it belongs to: the ceiling `oracle_fill` paints.
    """
    rng = np.random.default_rng(11)
    out: dict[tuple[str, str], np.ndarray] = {}
    for material, table in MATERIAL_TABLES.items():
        rgb = _samples(table, 600, rng, 4.0 if material == "skin" else JITTER)
        levels = np.array([ink_level(c) for c in rgb])
        lab = _lab(rgb)
        for level in INK_LEVELS:
            chosen = lab[levels == level] if (levels == level).any() else lab
            out[(material, level)] = np.clip(_rgb(chosen.mean(axis=0)), 0, 255)[0]
    return out


def oracle_fill(material: str, tone: str) -> np.ndarray:
    """The oracle's color for a region of `material` inked as `tone` (a Region.tone)."""
    fixed = {"eye": EYE_WHITE, "shine": SHINE, "pupil": PUPIL}
    if material in fixed:
        return np.array(fixed[material], dtype=np.float64)
    level = {"none": "white", "dots": "light", "hatch": "light", "dots_dense": "dense",
             "crosshatch": "dense", "black": "black"}[tone]
    return oracle_table()[(material, level)]
