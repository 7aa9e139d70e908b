"""Notebook configs: each parameter declared once (type, quick value, help, what is allowed), checked
when the config is made, read as a mapping by the records."""

from __future__ import annotations

import dataclasses

import pytest

from neuromod_lib import configs, profiles
from neuromod_lib.checks import ParameterError


@pytest.mark.parametrize("notebook", list(configs.CONFIGS))
def test_defaults_are_the_quick_profile_and_every_field_is_declared(notebook):
    cls = configs.CONFIGS[notebook]
    cfg = cls()
    assert cfg.notebook == notebook and cfg.profile == "quick"
    assert dict(cfg) == dict(profiles.resolve(notebook, "quick"))
    for name, spec in configs.specs(cls).items():
        assert spec.help and "=" not in spec.help, name  # papermill reads the help after the type
        assert spec.type_name in {"int", "float", "str", "bool", "list[int]", "list[float]", "list[str]"}
        assert spec.rule.check(name, spec.default) == getattr(cfg, name)


@pytest.mark.parametrize("notebook", list(configs.CONFIGS))
def test_profile_tables_name_only_declared_parameters_and_make_valid_configs(notebook):
    declared = configs.specs(configs.CONFIGS[notebook])
    for profile, values in profiles.PROFILE_VALUES.get(notebook, {}).items():
        assert profile in ("smoke", "paper")
        assert set(values) <= set(declared), (notebook, profile, set(values) - set(declared))
        cfg = configs.CONFIGS[notebook](profile=profile, **values)
        assert all(cfg[k] == pytest.approx(v) for k, v in values.items())


def test_a_config_is_a_read_only_mapping_with_notebook_and_profile():
    cfg = configs.PackingConfig(profile="smoke", sizes=[8], ks=[1, 2], steps=40, eval_every=20)
    assert list(cfg)[:4] == ["notebook", "profile", "seed", "device"]
    assert cfg["notebook"] == "04_rnn_task_packing" and cfg["sizes"] == [8] and "ks" in cfg
    assert len(cfg) == 2 + len(configs.specs(configs.PackingConfig))
    with pytest.raises(KeyError):
        cfg["size"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 80
    with pytest.raises(AttributeError, match="PackingConfig has no parameter 'size'; parameters: seed"):
        cfg.size  # noqa: B018


def test_values_are_converted_and_checked_when_made():
    cfg = configs.AmbiguityConfig(sigmas="0, 1", lr=1)
    assert cfg.sigmas == [0.0, 1.0] and isinstance(cfg.lr, float)
    for kwargs, fragment in [
        ({"n_neurons": 0}, "parameter n_neurons=0 is not allowed; allowed: an integer >= 1 <= 4096"),
        ({"tasks": ["go", "dm1"]}, "parameter task_b='anti' is not allowed: not one of tasks"),
        ({"task_b": "go"}, "parameter task_b='go' is not allowed: the same task as task_a"),
        ({"tau": 50.0}, "parameter tau=50.0 is not allowed: shorter than the time step dt=100.0"),
        ({"profile": "fast"}, "profile='fast' is unknown; allowed: smoke, quick, paper"),
    ]:
        with pytest.raises(ParameterError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            configs.AmbiguityConfig(**kwargs)
    with pytest.raises(ParameterError, match="inputs_per_unit=65 is not allowed: more than the 64 inputs"):
        configs.ContinualNotebookConfig(inputs_per_unit=65)
    with pytest.raises(ParameterError, match="full_budget=False is not allowed: the saturation check needs"):
        configs.PackingConfig(full_budget=False)
    assert not configs.AmbiguityConfig(full_budget=False).full_budget  # notebook 07 trains to criterion
    with pytest.raises(ParameterError, match="gain_sites='block9' names no sites"):
        configs.GainModulationConfig(gain_sites="block9")


def test_lists_are_copied_per_config():
    a, b = configs.PackingConfig(), configs.PackingConfig()
    assert a.sizes == b.sizes and a.sizes is not b.sizes


@pytest.mark.parametrize(
    ("notebook", "values", "fragment"),
    [
        ("01_gain_modulation", {"steps": 250}, "steps=250 is not allowed: not a multiple of eval_every=200"),
        ("02_stochastic_comodulation", {"n_tasks": 13}, "n_tasks=13 .* more than the 12 held-out attributes"),
        (
            "03_architecture_study",
            {"steps": 210},
            "steps=210 is not allowed: not a multiple of eval_every=200",
        ),
        ("03_architecture_study", {"n_pretrain": 19}, "n_tasks=2 .* with n_pretrain=19, .* at most 1"),
        ("07_modulation_families_compared", {"n_attributes": 13}, "n_attributes=13 .* 12 held-out"),
    ],
)
def test_the_image_notebooks_refuse_what_their_set_up_would_refuse_later(notebook, values, fragment):
    """Every rule the library would raise inside a kernel is checked when the config is made."""
    with pytest.raises(ParameterError, match=fragment):
        profiles.resolve(notebook, "quick", **values)


def test_the_paper_profile_runs_the_literature_celeba_protocol():
    cfg = profiles.resolve("01_gain_modulation", "paper")
    assert (cfg.dataset, cfg.protocol, cfg.n_tasks) == ("celeba", "all", 40)
    held_out = dict(protocol="held_out", n_tasks=20)
    assert profiles.resolve("02_stochastic_comodulation", "paper", **held_out).n_tasks == 20
    with pytest.raises(ParameterError, match=r"n_tasks=21 is not allowed: more than the 20 held-out attr"):
        profiles.resolve("02_stochastic_comodulation", "paper", **{**held_out, "n_tasks": 21})
    with pytest.raises(ParameterError, match=r"n_tasks=25 .* more than the 24 attributes \(protocol=all\)"):
        profiles.resolve("01_gain_modulation", "quick", protocol="all", n_tasks=25)
    with pytest.raises(ParameterError, match=r"protocol='some' is not allowed; allowed: one of held_o"):
        profiles.resolve("01_gain_modulation", "quick", protocol="some")
