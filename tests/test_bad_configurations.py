"""Invalid configurations across the commands (`benchmarks.faults.configs.BAD_CONFIGS`), each run as a user would
(`tripletclip ...`, the two-process one through ``accelerate launch``) with loading guarded: it must be refused with
a message naming the fix, exit status 2, before any model is loaded, any dataset read or any image opened."""

import pytest

from benchmarks.faults.configs import BAD_CONFIGS, BadConfig
from benchmarks.faults.fixtures import check_bad_configs


def test_there_are_at_least_thirty_across_every_command():
    assert len(BAD_CONFIGS) >= 30
    assert len({config.name for config in BAD_CONFIGS}) == len(BAD_CONFIGS)
    assert {config.argv[0] for config in BAD_CONFIGS} == {"train", "synthesize", "evaluate", "data", "push"}
    assert any(config.processes == 2 for config in BAD_CONFIGS)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, faults_inputs):
    """Every one-process configuration, run in one guarded process (the two-process ones run in their test)."""
    single = [config for config in BAD_CONFIGS if config.processes == 1]
    return check_bad_configs(single, faults_inputs, tmp_path_factory.mktemp("bad-configurations"))


@pytest.mark.parametrize("config", BAD_CONFIGS, ids=[config.name for config in BAD_CONFIGS])
def test_refused_before_compute_with_the_fix(config, request, faults_inputs, tmp_path):
    if config.processes == 1:
        problem = request.getfixturevalue("outcomes")[config.name]
    else:
        problem = check_bad_configs([config], faults_inputs, tmp_path)[config.name]
    assert problem is None, problem


def test_the_guard_catches_a_command_that_reads_data(tmp_path, faults_inputs):
    """The check itself can fail: a valid command line reads the world, and the guard says so."""
    valid = BadConfig("a valid inspection", ("data", "inspect", "--dataset", "{world}/train", "--rows", "2",
                                             "--output_dir", "{out}"), ("anything",))
    problem = check_bad_configs([valid], faults_inputs, tmp_path)[valid.name]
    assert problem is not None and "read before" in problem
