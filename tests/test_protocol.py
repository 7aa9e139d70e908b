"""One protocol for every model of notebooks 06-07 (:class:`neuromod_lib.modulation.ContextModel`).

Every model is built by name through one factory (:func:`neuromod_lib.continual.make_learner`) and
called the same way: ``model(x, context)`` with task ids ``(B,)`` or context vectors ``(B, K)``,
and ``model.all_task_logits(x)`` ``(T, B, C)``. Here every name is built and trained one short
epoch on the same tiny task sequence, then called on the same inputs.
"""

import pytest
import torch

from neuromod_lib import continual, families
from neuromod_lib.continual import ContinualConfig
from neuromod_lib.data.sequences import Task, TaskSequence
from neuromod_lib.models.random_weights import RandomWeightConfig, RandomWeightNet
from neuromod_lib.modulation import ContextModel

pytestmark = pytest.mark.usefixtures("one_thread")

T, D, C, B = 3, 8, 3, 5
NAMES = continual.LEARNERS  # notebook 06's methods and notebook 07's families


def tiny_sequence() -> TaskSequence:
    g = torch.Generator().manual_seed(0)
    tasks = []
    for t in range(T):
        x, y = torch.randn(48, D, generator=g), torch.randint(0, C, (48,), generator=g)
        tasks.append(Task(f"task{t}", x[:32], y[:32], x[32:], y[32:]))
    return TaskSequence("tiny", tasks, D, C, None)


@pytest.fixture(scope="module")
def models() -> dict[str, continual.Learner]:
    """Every model the factory builds, trained one epoch on the tiny sequence, in eval mode."""
    sequence = tiny_sequence()
    config = ContinualConfig(epochs=1, batch=16, expansion=2.0, inputs_per_unit=2, hidden=6)
    built = {}
    for name in NAMES:
        model = continual.make_learner(name, sequence, config, torch.Generator().manual_seed(0))
        continual.run_learner(name, model, sequence, config, progress=False, joint=name == "joint")
        built[name] = model.eval()
    return built


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(B, D, generator=torch.Generator().manual_seed(1))


IDS = torch.tensor([0, 2, 1, 1, 0])


def test_the_factory_builds_every_family_of_notebook_07_by_name():
    assert set(families.FAMILIES + families.REFERENCES) <= set(NAMES)
    assert set(continual.METHODS) <= set(NAMES)
    unknown = r"^method='dopamine' is unknown; choose from random_weights, finetune, .*, synaptic$"
    with pytest.raises(ValueError, match=unknown):
        continual.make_learner("dopamine", tiny_sequence(), ContinualConfig(), torch.Generator())


@pytest.mark.parametrize("name", NAMES)
def test_every_model_satisfies_the_protocol(models, name):
    model = models[name]
    assert isinstance(model, ContextModel)
    assert model.n_contexts == T


@pytest.mark.parametrize("name", NAMES)
def test_task_ids_and_one_hot_contexts_give_the_same_logits(models, x, name):
    model = models[name]
    with torch.no_grad():
        by_ids = model(x, IDS)
        by_vectors = model(x, torch.nn.functional.one_hot(IDS, T).float())
    assert by_ids.shape == (B, C)
    torch.testing.assert_close(by_vectors, by_ids)
    if name in continual.MODULATION_FAMILIES:  # one code path: the one-hot context *is* the task
        assert torch.equal(by_vectors, by_ids)


@pytest.mark.parametrize("name", NAMES)
def test_a_mixed_or_noisy_context_gives_finite_logits(models, x, name):
    eye = torch.eye(T)
    mixed = 0.6 * eye[IDS] + 0.4 * eye[(IDS + 1) % T]
    noisy = eye[IDS] + 0.5 * torch.randn(B, T, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for context in (mixed, noisy):
            logits = models[name](x, context)
            assert logits.shape == (B, C) and logits.isfinite().all()


@pytest.mark.parametrize("name", NAMES)
def test_all_task_logits_row_t_is_the_model_under_task_t(models, x, name):
    model = models[name]
    with torch.no_grad():
        every = model.all_task_logits(x)
        assert every.shape == (T, B, C)
        for t in range(T):
            torch.testing.assert_close(every[t], model(x, torch.full((B,), t)))


@pytest.mark.parametrize("name", NAMES)
def test_bad_contexts_are_errors_naming_context_or_task_ids(models, x, name):
    model = models[name]
    ids, nan = torch.long, float("nan")
    shape = rf"^context must be \({B}, {T}\) vectors, a weight per task, or \({B},\) task ids; got shape"
    bad = [
        (torch.ones(B, T + 1), shape),
        (torch.ones(B - 1, T), rf"^context must be \({B}, {T}\) vectors"),
        (torch.full((B, T), nan), r"^context contains NaN or infinite values \(nan at index \[0, 0\]"),
        (torch.ones(B, dtype=torch.bool), "^context must hold integer task ids or float context vectors"),
        (torch.zeros(B - 1, dtype=ids), rf"^task_ids has {B - 1} entries but the batch has {B} samples$"),
        (torch.zeros(B, 1, dtype=ids), rf"^task_ids must be a \({B},\) integer tensor \(one id per sample\)"),
        (torch.tensor([0, 1, 3, 0, 0]), rf"^task 3 was never trained; trained tasks: 0\.\.{T - 1}$"),
        (torch.tensor([0, -1, 0, 0, 0]), rf"^task -1 was never trained; trained tasks: 0\.\.{T - 1}$"),
    ]
    for context, message in bad:
        with pytest.raises(ValueError, match=message):
            model(x, context)


def test_the_random_weight_network_itself_satisfies_the_protocol(x):
    net = RandomWeightNet(RandomWeightConfig(n_inputs=D, n_classes=C, expansion=2.0, inputs_per_unit=2))
    gen = torch.Generator().manual_seed(0)
    for _ in range(T):
        net.add_task(gen)
    assert isinstance(net, ContextModel) and net.n_contexts == T
    torch.testing.assert_close(net(x, torch.nn.functional.one_hot(IDS, T).float()), net(x, IDS))
    every = net.all_task_logits(x)
    for t in range(T):
        torch.testing.assert_close(every[t], net(x, t))
