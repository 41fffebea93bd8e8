"""The msmt CLI: --help on every subcommand, clear errors on bad input."""

import pytest

from pipeline.cli import build_parser, main

SUBCOMMANDS = ("generate-data", "run", "compile-kubeflow", "evaluate", "export-check", "score", "models", "demo", "spec")


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    listed = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse internals, read-only
    assert set(listed) == set(SUBCOMMANDS)
    for cmd in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([cmd, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: msmt {cmd}" in out and len(out.splitlines()) > 3, cmd


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "generate-data" in capsys.readouterr().out


def test_run_with_no_matching_data_fails_clearly(tmp_path, capsys):
    code = main(["run", "--data", str(tmp_path / "nothing-*.csv"), "--spec", "synthetic",
                 "--output", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no file matches this pattern" in err and str(tmp_path) in err


def test_run_with_bad_spec_names_file(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("a\n1\n")
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nfeatures: []\n")
    code = main(["run", "--data", str(tmp_path / "d.csv"), "--spec", str(spec), "--output", str(tmp_path / "o")])
    assert code == 1
    assert f"{spec}: features: is required" in capsys.readouterr().err


def test_run_with_unknown_format(tmp_path, capsys):
    (tmp_path / "d.json").write_text("{}")
    assert main(["run", "--data", str(tmp_path / "d.json"), "--spec", "synthetic", "--output", str(tmp_path)]) == 1
    assert "cannot tell the format" in capsys.readouterr().err


def test_models_lists_shared_bottom(capsys):
    assert main(["models"]) == 0
    assert "shared_bottom" in capsys.readouterr().out
