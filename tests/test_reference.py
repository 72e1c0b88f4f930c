"""docs/reference.md is generated from the code (``make reference``) and never stale."""

from jobs import reference
from mnist_core.sweep.config import KEY_HELP, SECTIONS


def test_the_reference_is_what_the_code_generates_now():
    assert reference.REFERENCE.read_text() == reference.reference(), (
        "docs/reference.md is stale: run make reference")


def test_every_config_key_and_every_job_flag_is_in_it():
    text = reference.reference()
    for section, keys in SECTIONS.items():
        assert f"### [{section}]" in text
        for key in keys:
            assert f"| {key} |" in text, f"[{section}] {key}"
    assert all(help_text for keys in KEY_HELP.values() for help_text in keys.values())
    for job in reference.JOBS:
        parser = __import__(f"jobs.{job}", fromlist=["build_parser"]).build_parser()
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in text, f"jobs.{job} {option}"
