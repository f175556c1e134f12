"""params.yaml validation: every mistake is stopped with the key's name, before any work."""

from pathlib import Path

import pytest

from pipeline.config import Params, ParamsError, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_params_load_with_expected_types():
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    assert p.lr == pytest.approx(2e-4) and isinstance(p.lr, float)
    assert p.source.kind == "synthetic"
    assert "monochrome" in p.select.scan.include_any
    assert "monochrome" in p.select.color.exclude
    assert "partially_monochrome" not in p.select.scan.include_any


def differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs of one dataclass type."""
    import dataclasses

    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            out += differences(x, y, f"{prefix}{f.name}.")
        elif x != y:
            out.append(f"{prefix}{f.name}: dataclass default {x!r}, params.yaml {y!r}")
    return out


def test_dataclass_defaults_are_the_shipped_params():
    """One set of defaults: a key deleted from params.yaml keeps the value it had there."""
    shipped = load_params(ROOT / "params.yaml")
    assert differences(Params(), shipped) == []
    assert params_from_dict({}) == shipped  # an empty params file: every default, the same run


def test_differences_names_the_dotted_key():
    changed = params_from_dict({"images": {"size": 512}, "colorizer": {"hints_max": 0}})
    assert differences(Params(), changed) == ["images.size: dataclass default 256, params.yaml 512",
                                              "colorizer.hints_max: dataclass default 32, params.yaml 0"]


@pytest.mark.parametrize(
    "data, key_in_message",
    [
        ({"lrr": 0.1}, "lrr"),
        ({"source": {"kind": "ftp"}}, "source.kind"),
        ({"source": {"synthetic": {"n_color": "many"}}}, "source.synthetic.n_color"),
        ({"source": {"synthetic": {"n_colour": 3}}}, "source.synthetic.n_colour"),
        ({"images": {"size": 4}}, "images.size"),
        ({"images": {"size": 64.5}}, "images.size"),
        ({"images": {"fit": "stretch"}}, "images.fit"),
        ({"select": {"holdout_fraction": 1.5}}, "select.holdout_fraction"),
        ({"select": {"ratings": ["x"]}}, "select.ratings"),
        ({"select": {"scan": {"include_any": ["two words"]}}}, "select.scan.include_any"),
        ({"select": {"drop_deleted": "yes"}}, "select.drop_deleted"),
        ({"source": {"kind": "http", "url": "ftp://mirror/"}}, "source.url"),
        ({"source": {"kind": "local", "root": ""}}, "source.root"),
        ({"source": {"metadata_files": ["../etc/passwd"]}}, "source.metadata_files"),
        ({"lr": 5}, "lr"),
        ({"lr": "fast"}, "lr"),
    ],
)
def test_bad_values_name_the_key(data, key_in_message):
    with pytest.raises(ParamsError) as err:
        params_from_dict(data)
    assert key_in_message in str(err.value)


def test_float_strings_from_dvc_exp_are_coerced():
    # `dvc exp run -S lr=2e-4` can land as a string under YAML 1.1 rules
    assert params_from_dict({"lr": "2e-4"}).lr == pytest.approx(2e-4)
    assert isinstance(params_from_dict({"select": {"min_aspect": 1}}).select.min_aspect, float)


def test_url_credentials_are_redacted_in_errors():
    with pytest.raises(ParamsError) as err:
        params_from_dict({"source": {"kind": "http", "url": "ftp://alice:hunter2@host/x"}})
    assert "hunter2" not in str(err.value)


def test_yaml_scientific_notation(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("lr: 1e-05\nimages:\n  size: 128\n")
    p = load_params(f)
    assert p.lr == pytest.approx(1e-5)
    assert p.images.size == 128


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_full_scale_config_is_valid_and_is_the_original_setting():
    p = load_params(ROOT / "configs/danbooru2020-gpu.yaml")
    assert p.source.kind == "local" and p.images.size == 256
    assert p.colorizer.progressive_sizes == [64, 128, 256]
    assert p.colorizer.device == "cuda" and p.cyclegan.device == "cuda"
    assert p.lr == pytest.approx(2e-4)
    # the same keys as the default: an experiment can switch between the two files
    default = load_params(ROOT / "params.yaml")
    assert type(p) is type(default) and p.select == default.select


def test_cpu_hour_config_is_the_default_with_a_wider_longer_colorizer():
    """configs/cpu-hour.yaml is what its header's `dvc exp run -S ...` sets: the default
    pipeline but for the colorizer's width and steps (issue 25's opt-in scale)."""
    from dataclasses import replace

    p, default = load_params(ROOT / "configs/cpu-hour.yaml"), load_params(ROOT / "params.yaml")
    assert p.colorizer.width >= 32 and p.colorizer.steps > default.colorizer.steps
    header = (ROOT / "configs/cpu-hour.yaml").read_text().split("\n\n")[0]
    assert f"colorizer.width={p.colorizer.width}" in header and f"colorizer.steps={p.colorizer.steps}" in header
    assert replace(p, colorizer=replace(p.colorizer, width=default.colorizer.width,
                                        steps=default.colorizer.steps)) == default
