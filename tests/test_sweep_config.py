"""Sweep TOML validation and grid expansion (no Ray needed)."""

import subprocess
import sys

import pytest

from mnist_core.errors import ConfigError
from mnist_core.sweep.config import SEARCH_REFIT_SEEDS, load_sweep_config, parse_sweep_config

VALID = """
[sweep]
name = "grid"
dataset = "digits"
validation_split = 0.1
seeds = [0, 1]

[grid]
hidden_units = [[10], [32, 16]]
activation = ["sigmoid", "relu"]
optimizer = ["sgd"]
learning_rate = [0.1, 0.5, 1]
batch_size = [100]
epochs = [5]

[resources]
num_cpus = 1
num_gpus = 0.25
max_retries = 1
"""


def test_grid_is_the_cartesian_product_times_seeds():
    config = parse_sweep_config(VALID)
    assert len(config.trials) == 2 * 2 * 1 * 3 * 1 * 1 * 2
    assert len({trial.trial_id for trial in config.trials}) == len(config.trials)
    assert config.resources.num_gpus == 0.25
    assert config.trials[-1].config.model.hidden_units == (32, 16)
    assert config.grid_names == ["hidden_units", "activation", "learning_rate", "seed"]


def test_trial_ids_are_stable():
    first, second = parse_sweep_config(VALID), parse_sweep_config(VALID)
    assert [t.trial_id for t in first.trials] == [t.trial_id for t in second.trials]


def test_missing_grid_keys_take_the_tutorial_defaults():
    config = parse_sweep_config('[sweep]\ndataset = "digits"\n')
    (trial,) = config.trials
    assert trial.config.model.hidden_units == (10,) and trial.config.optimizer == "sgd"


@pytest.mark.parametrize(
    ("replace", "by", "named"),
    [
        ("max_retries = 1", "max_retries = 1\ncolour = 3", "unknown key.*colour"),
        ("[resources]", "[extras]\nx = 1\n[resources]", r"unknown section \[extras\]"),
        ('optimizer = ["sgd"]', "optimizer = []", "optimizer must be a non-empty list"),
        ("seeds = [0, 1]", "seeds = []", "seeds must be a non-empty list"),
        ('optimizer = ["sgd"]', 'optimizer = "sgd"', "optimizer must be a non-empty list"),
        ("epochs = [5]", "epochs = [0]", "epochs must be a positive integer"),
        ("batch_size = [100]", "batch_size = [-100]", "batch_size must be a positive integer"),
        ("batch_size = [100]", 'batch_size = ["100"]', "batch_size has the wrong type"),
        ('activation = ["sigmoid", "relu"]', 'activation = ["softsign"]', "'softsign' is unknown"),
        ('optimizer = ["sgd"]', 'optimizer = ["lbfgs"]', "optimizer 'lbfgs' is unknown"),
        ("num_gpus = 0.25", "num_gpus = -1", "num_gpus must be >= 0"),
        ("num_gpus = 0.25", 'num_gpus = "one"', "num_gpus must be a number"),
        ("num_cpus = 1", "num_cpus = 0", "num_cpus must be > 0"),
        ("max_retries = 1", "max_retries = -1", "max_retries must be an integer"),
        ("max_retries = 1", "max_retries = 1\npack_size = 0", "pack_size must be"),
        ("max_retries = 1", 'max_retries = 1\npack_size = "wide"', "pack_size must be"),
        ("validation_split = 0.1", "validation_split = 0.0", "validation_split must be > 0"),
        ('dataset = "digits"', 'dataset = "cifar"', "dataset 'cifar' is unknown"),
        ("hidden_units = [[10], [32, 16]]", "hidden_units = [10]", "list of lists"),
        ('name = "grid"', 'name = "a b/c"', "name must be"),
        ("[grid]", "[grid\n", "not valid TOML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, replace, by, named):
    assert replace in VALID
    path = tmp_path / "bad.toml"
    path.write_text(VALID.replace(replace, by, 1))
    with pytest.raises(ConfigError, match=named) as caught:
        load_sweep_config(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_sweep_job_exits_2_on_bad_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(VALID.replace("epochs = [5]", "epochs = [0]"))
    result = subprocess.run([sys.executable, "-m", "jobs.sweep", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "epochs" in result.stderr


def test_shipped_configs_are_valid():
    assert len(load_sweep_config("configs/quick.toml").trials) == 16
    assert len(load_sweep_config("configs/mnist_seed.toml").trials) == 72


@pytest.mark.parametrize(("grid", "named"), [
    ("learning_rate = {loguniform = [0.01, 1.0]}\n", "1,000,000,000 trials"),
    ("learning_rate = [" + ", ".join(["0.1"] * 10_000) + "]\nmomentum = ["
     + ", ".join(["0.5"] * 2_000) + "]\n", "20,000,000 trials"),
    ("hidden_units = [[100000000]]\n", r"hidden_units \[100000000\] make a network of"),
    ("epochs = [100000000]\n", "epochs must be <= 100,000"),
])
def test_sweeps_too_big_for_the_machine_are_refused_at_once(grid, named):
    text = ('[sweep]\ndataset = "digits"\nsamples = 1000000000\n[grid]\n' + grid
            if "loguniform" in grid else '[sweep]\ndataset = "digits"\n[grid]\n' + grid)
    with pytest.raises(ConfigError, match=named) as caught:  # before anything is expanded
        parse_sweep_config(text)
    assert "\n" not in str(caught.value)


def test_max_trials_can_be_raised():
    text = ('[sweep]\ndataset = "digits"\nmax_trials = 3\n[grid]\n'
            'learning_rate = [0.1, 0.2, 0.3, 0.4]\n')
    with pytest.raises(ConfigError, match="4 trials .* exceed max_trials = 3; raise"):
        parse_sweep_config(text)
    assert len(parse_sweep_config(text.replace("max_trials = 3", "max_trials = 4")).trials) == 4


SEARCH = """
[sweep]
dataset = "digits"
seeds = [0, 1]
samples = 8

[grid]
learning_rate = {loguniform = [0.01, 1.0]}
"""


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('[search]\nsampler = "grid"', "sampler 'grid' is unknown"),
        ("[search]\nround_size = 4", 'round_size applies only with sampler = "tpe"'),
        ('[search]\nsampler = "tpe"\nround_size = 0', "round_size must be an integer >= 1"),
        ('[search]\nsampler = "tpe"\n[scheduler]\nkind = "halving"',
         'sampler = "tpe" does not apply with \\[scheduler\\] kind = "halving"'),
        ('[selection]\nby = "median"', "by 'median' is unknown"),
        ("[selection]\nfinalists = 2\nfolds = 3", "\\[selection\\] finalists and folds were "
         "removed"),
        ('[selection]\nrefit = "yes"', "refit must be true or false"),
        ("[selection]\nrefit_seeds = 0", "refit_seeds must be an integer >= 1"),
        ("[selection]\nrefit = false\nrefit_seeds = 4", "refit_seeds applies only with refit"),
    ],
)
def test_bad_search_and_selection_options_are_one_line(tmp_path, extra, named):
    path = tmp_path / "bad.toml"
    path.write_text(SEARCH + extra + "\n")
    with pytest.raises(ConfigError, match=named) as caught:
        load_sweep_config(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_tpe_needs_distributions_and_seed_mean_needs_seeds():
    grid_only = '[sweep]\ndataset = "digits"\n[search]\nsampler = "tpe"\n'
    with pytest.raises(ConfigError, match="needs at least one distribution"):
        parse_sweep_config(grid_only)
    one_seed = SEARCH.replace("seeds = [0, 1]", "seeds = [3]") + '[selection]\nby = "seed_mean"\n'
    with pytest.raises(ConfigError, match=r"needs at least two \[sweep\] seeds, got \[3\]"):
        parse_sweep_config(one_seed)


def test_tpe_sweeps_count_their_trials_before_any_is_proposed():
    config = parse_sweep_config(SEARCH + '[search]\nsampler = "tpe"\nround_size = 3\n')
    assert config.trials == () and config.trial_count == 16 and config.proposes
    assert config.grid_names == ["learning_rate", "seed"]
    assert config.selection.refit  # a search: refit by default, from several seeds
    assert config.selection.refit_seeds == SEARCH_REFIT_SEEDS > 1
    assert parse_sweep_config(SEARCH + "[selection]\nrefit = false\n").selection.refit_seeds == 1


def test_a_million_trial_sweep_holds_its_draws_not_a_million_configs():
    import tracemalloc

    text = """
[sweep]
dataset = "digits"
samples = 200000
seeds = [0, 1, 2, 3, 4]
[grid]
learning_rate = {loguniform = [0.01, 3.0]}
"""
    tracemalloc.start()
    config = parse_sweep_config(text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(config.trials) == config.trial_count == 1_000_000
    assert peak < 40 * 2**20  # 200,000 draws and their list: a million configs hold ~1.5 GB
    last = config.trials[-1]
    assert last.trial_id.startswith("t999999-") and last.config.seed == 4
    assert config.trials[999_995].config.learning_rate == last.config.learning_rate
    assert config.grid_names == ["learning_rate", "seed"]


def test_trials_are_made_in_the_order_of_the_product_of_samples_points_and_seeds():
    import itertools

    config = parse_sweep_config(VALID.replace('learning_rate = [0.1, 0.5, 1]',
                                              'learning_rate = {uniform = [0.1, 1.0]}')
                                .replace('seeds = [0, 1]', 'seeds = [0, 1]\nsamples = 3'))
    points = list(itertools.product([(10,), (32, 16)], ["sigmoid", "relu"]))
    expected = [(units, activation, seed) for _ in range(3) for units, activation in points
                for seed in (0, 1)]
    made = [(trial.config.model.hidden_units, trial.config.model.activation,
             trial.config.seed) for trial in config.trials]
    assert made == expected
    rates = [trial.config.learning_rate for trial in config.trials]
    assert len(set(rates)) == 3 and rates[:8] == [rates[0]] * 8
    assert [trial.trial_id[:6] for trial in config.trials[:2]] == ["t0000-", "t0001-"]
    assert config.trials[2:4] == [config.trials[2], config.trials[3]]


@pytest.mark.parametrize("grid", [
    'optimizer = ["sgd", "adam"]\nmomentum = {uniform = [0.0, 0.9]}',
    'optimizer = {choice = ["sgd", "adam"]}\nmomentum = [0.5]',
])
def test_a_value_no_trial_may_take_is_refused_at_parse_time(grid):
    with pytest.raises(ConfigError, match="momentum and nesterov apply to sgd only"):
        parse_sweep_config(f'[sweep]\ndataset = "digits"\nsamples = 50\n[grid]\n{grid}\n')


@pytest.mark.parametrize(("text", "message"), [
    ('[sweep]\nsamples = 4\n[grid]\nlearning_rate = {uniform = [-0.2, 1.0]}\n'
     '[search]\nsampler = "tpe"', "[grid] learning_rate must be > 0, got -0.2"),
    ('[sweep]\nsamples = 4\n[grid]\nlearning_rate = {uniform = [nan, 1.0]}',
     "[grid] learning_rate: uniform range [nan, 1.0] must be finite"),
    ('[sweep]\nsamples = 4\n[grid]\nbatch_size = {randint = [0, 10]}\n'
     '[search]\nsampler = "tpe"', "[grid] batch_size must be a positive integer, got 0"),
    ("[sweep]\nvalidation_split = nan", "[sweep] validation_split must be a finite number"),
    ("[resources]\nnum_cpus = nan", "[resources] num_cpus must be a finite number"),
    ("[resources]\nnum_gpus = inf", "[resources] num_gpus must be a finite number"),
    ('[sweep]\nsamples = 4\nsearch_seed = -1\n[grid]\nlearning_rate = {uniform = [0.1, 1.0]}',
     "[sweep] search_seed must be an integer in [0, 4294967295], got -1"),
    ("[sweep]\nseeds = [0, 4294967296]", "[sweep] seeds must be an integer in [0, 4294967295]"),
    ('[sweep]\nsamples = 4\n[grid]\nlearning_rate = {uniform = [0.1, 1.0]}\n'
     "[selection]\nrefit_seeds = 100000000", "[selection] 4 trials and 100,000,000 more for "
     "the refit's seeds exceed [sweep] max_trials = 10,000,000"),
])
def test_a_value_no_sampler_may_use_is_refused_before_any_work(text, message):
    with pytest.raises(ConfigError) as error:
        parse_sweep_config(text)
    assert str(error.value).startswith(message)


def test_a_range_whose_open_end_no_draw_reaches_is_accepted():
    config = parse_sweep_config('[sweep]\nsamples = 3\n[grid]\nmomentum = {uniform = [0.0, 1.0]}')
    assert config.trial_count == 3


@pytest.mark.parametrize(("text", "message"), [
    ("[grid]\nbatch_size = [1000000000000]", "[grid] batch_size 1,000,000,000,000 is larger "
     "than the 1,293 training images"),
])
def test_what_only_the_data_can_tell_is_refused_before_ray(tmp_path, text, message):
    config = tmp_path / "big.toml"
    config.write_text('[sweep]\nname = "big"\ndataset = "digits"\n' + text.replace(
        "[sweep]\n", ""))
    result = subprocess.run([sys.executable, "-m", "jobs.sweep", "--config", str(config),
                             "--out", str(tmp_path / "runs")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert not list((tmp_path / "runs").glob("*/sweep.toml"))


def test_a_failed_download_names_the_config_key_not_a_flag(tmp_path):
    import os

    config = tmp_path / "mnist.toml"
    config.write_text('[sweep]\nname = "m"\ndataset = "mnist"\n')
    closed = "http://127.0.0.1:9"  # nothing listens: the download fails at once, offline or not
    result = subprocess.run([sys.executable, "-m", "jobs.sweep", "--config", str(config),
                             "--out", str(tmp_path / "runs")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "KERAS_HOME": str(tmp_path / "k"),
                                              "https_proxy": closed, "http_proxy": closed,
                                              "HTTPS_PROXY": closed, "HTTP_PROXY": closed})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: [sweep] data_path could not download mnist")
