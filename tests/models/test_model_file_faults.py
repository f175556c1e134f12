"""Published model files that declare one architecture and hold weights of another
(`pipeline.models.model_file.load_model`): each is refused by name, before anything of the
declared size is allocated.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import publish_tiny_scan_generator

from pipeline.models.colorizer import (
    AttentionUNet,
    UNetConfig,
    load_colorizer,
    publish_colorizer,
)
from pipeline.models.scan_generator import build_generator, load_scan_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_colorizer(path):
    torch.manual_seed(0)
    g = AttentionUNet(UNetConfig(width=4, mults=(1, 2), n_attention=1, groups=2))
    publish_colorizer(g, path, image_size=32, steps=0, variant="scangen")
    return path


def redeclared(path, out, **config):
    """The file at `path` with its architecture's keys changed to `config`, weights kept."""
    blob = torch.load(path, weights_only=True)
    blob["config"].update(config)
    torch.save(blob, out)
    return out


FAMILIES = [(tiny_colorizer, load_colorizer), (publish_tiny_scan_generator, load_scan_generator)]


@pytest.mark.parametrize("publish, load", FAMILIES, ids=["colorizer", "scan_generator"])
def test_a_small_file_declaring_width_8192_is_refused_by_name(tmp_path, publish, load):
    bad = redeclared(publish(tmp_path / "good.pt"), tmp_path / "wide.pt", width=8192)
    assert bad.stat().st_size < 100_000
    with pytest.raises(ValueError) as err:
        load(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: ") and "width = 8192" in message and "at most" in message, message


def test_the_width_8192_file_is_refused_fast_and_small(tmp_path):
    """In a child process limited to 1 GiB of address space above what torch takes: the
    refusal allocates nothing of the declared size (building it first asked for >100 GB)."""
    bad = redeclared(tiny_colorizer(tmp_path / "good.pt"), tmp_path / "wide.pt", width=8192)
    child = textwrap.dedent(f"""
        import re, resource, time
        import torch
        from pipeline.models.colorizer import load_colorizer
        vm = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
        t = time.perf_counter()
        try:
            load_colorizer({str(bad)!r})
        except ValueError as exc:
            print("refused in", time.perf_counter() - t, "s:", exc)
    """)
    res = subprocess.run([sys.executable, "-c", child], check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("refused in"), res.stderr[-3000:]
    seconds = float(res.stdout.split()[2])
    assert seconds < 2, res.stdout
    assert f"{bad}: " in res.stdout


@pytest.mark.parametrize("config, message", [
    ({"width": 8}, "is 4x1x3x3, the architecture needs 8x1x3x3"),  # declared twice as wide as stored
    ({"mults": [1, 2, 4]}, "it declares: missing encoder."),  # a level more than stored
    ({"width": 2 ** 40}, "cannot be built"),  # a weight count past int64
    ({"width": 0}, "UNetConfig.width = 0: must be an integer >= 1"),
])
def test_declared_architecture_not_matching_the_weights_is_named(tmp_path, config, message):
    bad = redeclared(tiny_colorizer(tmp_path / "good.pt"), tmp_path / "bad.pt", **config)
    with pytest.raises(ValueError) as err:
        load_colorizer(bad)
    assert str(err.value).startswith(f"{bad}: ") and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_weight_that_is_not_a_tensor_is_named(tmp_path):
    good = tiny_colorizer(tmp_path / "good.pt")
    blob = torch.load(good, weights_only=True)
    key = next(iter(blob["state_dict"]))
    blob["state_dict"][key] = 3
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=f"{key} is a int, the architecture needs"):
        load_colorizer(tmp_path / "bad.pt")


@pytest.mark.parametrize("build, config", [
    (lambda c: AttentionUNet(UNetConfig(**c)), {}),
    (lambda c: AttentionUNet(UNetConfig(**c)), {"in_channels": 5, "mults": (1, 2, 4, 8, 8), "n_attention": 4}),
    (build_generator, {"in_channels": 3, "out_channels": 1, "n_down": 3, "input_skip": True}),
])
def test_shapes_built_on_meta_are_the_real_ones(build, config):
    from pipeline.models.model_file import _ShapesOnly

    with torch.device("meta"), _ShapesOnly():
        declared = build(config).state_dict()
    real = build(config).state_dict()
    assert {k: t.shape for k, t in declared.items()} == {k: t.shape for k, t in real.items()}
    assert all(t.is_meta for t in declared.values()) and not any(t.is_meta for t in real.values())


def test_the_scan_generators_white_point_makes_light_output_paper_and_round_trips(tmp_path):
    """white_point w: output lightness v becomes min(v / w, 1); 1.0 leaves the output and the
    published file's config as they were before the option existed."""
    from pipeline.models.scan_generator import (
        GeneratorConfig,
        WeakGenerator,
        load_scan_generator,
        publish_scan_generator,
    )

    torch.manual_seed(0)
    plain = WeakGenerator(GeneratorConfig(3, 1, width=4, n_down=1, n_res=1, groups=2, input_skip=True))
    levelled = WeakGenerator(GeneratorConfig(3, 1, width=4, n_down=1, n_res=1, groups=2, input_skip=True,
                                             white_point=0.8))
    levelled.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    v = (plain(x) + 1) / 2
    out = (levelled(x) + 1) / 2
    assert torch.allclose(out, (v / 0.8).clamp(max=1), atol=1e-6)
    assert (out == 1).float().mean() > (v == 1).float().mean()  # more paper white
    assert "white_point" not in plain.to_config_dict()
    publish_scan_generator(levelled, tmp_path / "g.pt", image_size=16, steps=1)
    again = load_scan_generator(tmp_path / "g.pt")
    assert again.config.white_point == 0.8 and torch.allclose(again(x), levelled(x))
    with pytest.raises(ValueError, match="white_point"):
        GeneratorConfig(3, 1, white_point=0.3)
