"""Profiles: every parameter is validated, named in errors, and typed from the command line."""

import pytest

from neuromod_lib import profiles
from neuromod_lib.checks import Rule
from neuromod_lib.profiles import ParameterError


def test_every_profile_resolves_for_every_notebook():
    for name in profiles.notebook_names():
        for profile in profiles.PROFILES:
            cfg = profiles.resolve(name, profile)
            assert cfg.notebook == name and cfg.profile == profile
            assert set(cfg) == {"notebook", "profile", *profiles.spec(name)}


def test_overrides_apply_and_none_means_profile_value():
    quick = profiles.resolve("00_overview", "quick")
    cfg = profiles.resolve("00_overview", "quick", n_neurons=None, gain=3, seed=7)
    assert cfg.n_neurons == quick.n_neurons
    assert cfg.gain == 3.0 and isinstance(cfg.gain, float)
    assert cfg.seed == 7


def test_profiles_differ_where_specified():
    smoke, paper = (profiles.resolve("00_overview", p) for p in ("smoke", "paper"))
    assert smoke.n_neurons < paper.n_neurons


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"n_neurons": 0}, "n_neurons"),
        ({"n_neurons": 2.5}, "n_neurons"),
        ({"n_neurons": True}, "n_neurons"),
        ({"kappa": 0.0}, "kappa"),
        ({"kappa": float("nan")}, "kappa"),
        ({"gain": -1.0}, "gain"),
        ({"threshold": 1.5}, "threshold"),
        ({"seed": -1}, "seed"),
        ({"device": "gpu"}, "device"),
        ({"device": 3}, "device"),
        ({"n_nuerons": 4}, "n_nuerons"),
    ],
)
def test_bad_values_name_the_parameter_and_what_is_allowed(overrides, named):
    with pytest.raises(ParameterError, match=named) as info:
        profiles.resolve("00_overview", "quick", **overrides)
    assert "allowed" in str(info.value)


def test_unknown_profile_and_notebook():
    with pytest.raises(ParameterError, match="profile='fast'.*smoke, quick, paper"):
        profiles.resolve("00_overview", "fast")
    with pytest.raises(ParameterError, match="notebook='99_nope'.*00_overview"):
        profiles.resolve("99_nope")


@pytest.mark.parametrize(
    ("pair", "expected"),
    [("n_neurons=12", 12), ("gain=0.5", 0.5), ("gain=2", 2.0), ("device=cpu", "cpu"), ("seed= 3 ", 3)],
)
def test_parse_overrides_types_command_line_text(pair, expected):
    (value,) = profiles.parse_overrides("00_overview", [pair]).values()
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("pair", "named"),
    [
        ("n_neurons=abc", "n_neurons"),
        ("gain=lots", "gain"),
        ("nope=1", "nope"),
        ("gain", "gain"),
        ("=3", "=3"),
    ],
)
def test_parse_overrides_rejects_bad_text(pair, named):
    with pytest.raises(ParameterError, match=named):
        profiles.parse_overrides("00_overview", [pair])


def test_bool_parameters_parse_words():
    p = Rule(bool)
    assert p.parse("flag", "yes") is True and p.parse("flag", "0") is False
    with pytest.raises(ParameterError, match="flag='maybe'.*true or false"):
        p.parse("flag", "maybe")


def test_config_attribute_errors_list_parameters():
    cfg = profiles.resolve("00_overview")
    with pytest.raises(AttributeError, match="n_neurons"):
        cfg.n_nuerons  # noqa: B018


def test_sequence_choices_are_the_library_benchmarks():
    from neuromod_lib.data.sequences import BENCHMARKS

    for notebook, name in (
        ("06_random_weight_continual_learning", "benchmark"),
        ("07_modulation_families_compared", "benchmark"),
    ):
        assert profiles.spec(notebook)[name].rule.choices == BENCHMARKS


def test_resolve_reads_declared_parameters_from_a_notebook_namespace():
    """A short parameters cell: any declared parameter set in the notebook (or injected by
    papermill) counts, None still means the profile's value, other names are ignored."""
    namespace = {"steps": 80, "eval_every": 40, "replicates": None, "size_list": [1], "profile": "x"}
    cfg = profiles.resolve("04_rnn_task_packing", "smoke", namespace)
    smoke = profiles.resolve("04_rnn_task_packing", "smoke")
    assert (cfg.steps, cfg.eval_every, cfg.replicates) == (80, 40, smoke.replicates)
    assert profiles.resolve("04_rnn_task_packing", "smoke", namespace, steps=120).steps == 120
    with pytest.raises(profiles.ParameterError, match="parameter steps=50 is not allowed"):
        profiles.resolve("04_rnn_task_packing", "smoke", {"steps": 50, "eval_every": 40})


def test_lists_are_lists_and_take_their_command_line_form():
    cfg = profiles.resolve("04_rnn_task_packing", "quick", sizes="8, 16", ks=(1, 2))
    assert cfg.sizes == [8, 16] and cfg.ks == [1, 2]
    parsed = profiles.parse_overrides("05_rnn_ambiguity_and_dynamics", ["sigmas=0,0.5"])
    assert parsed == {"sigmas": [0.0, 0.5]}
    for bad, fragment in [([], "is not allowed"), ([8, 8], "lists 8 twice"), ([8, "x"], "entry 'x'")]:
        with pytest.raises(profiles.ParameterError, match=fragment):
            profiles.resolve("04_rnn_task_packing", "quick", sizes=bad)


def test_every_shown_parameter_is_declared():
    for name in profiles.notebook_names():
        assert set(profiles.SHOWN[name]) <= set(profiles.spec(name)), name
