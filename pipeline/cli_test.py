"""The msmt CLI: --help on every subcommand, clear errors on bad input."""

import json
import os
import re

import pytest

from pipeline.cli import build_parser, main

SUBCOMMANDS = ("generate-data", "run", "compile-kubeflow", "evaluate", "export-check", "score", "models", "demo",
               "spec", "data", "serving", "skew")


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


def test_run_and_demo_help_list_the_exit_codes(capsys):
    for cmd in ("run", "demo"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert ("exit codes: 0 succeeded, 1 failed, 3 blocked_by_validation, 4 not_blessed, 2 usage error" in out), \
            out


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


# ---------------------------------------------------------------------------- data prepare
RAW = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "raw")


def test_data_prepare_help_says_what_it_reads_and_writes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "prepare", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in ("sample_skeleton_{train,test}.csv", "common_features_{train,test}.csv", "AliExpress_NL/train.csv",
                 "raw_sample.csv", "behavior_log.csv", "OUTPUT/train/impressions.csv", "OUTPUT/spec.yaml",
                 "OUTPUT/prepare_summary.json", "--max-bad-fraction", "--conversion-window-hours", "--country"):
        assert text in out, text
    assert main(["data"]) == 2


def test_data_prepare_writes_the_output_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["data", "prepare", "aliexpress", "--input", os.path.join(RAW, "aliexpress"), "--output", str(out),
                 "--max-bad-fraction", "0.5", "--progress-every", "5"]) == 0
    captured = capsys.readouterr()
    assert "data prepare aliexpress: 24 input lines -> train 13 / test 7 rows" in captured.out
    assert "train scenarios ES: 4, FR: 3, NL: 6; labels click: 6, conversion: 2" in captured.out
    assert f"--spec {out}/spec.yaml" in captured.out
    # progress on stderr: ES/train.csv has 5 lines, one bad; AliExpress_NL/train.csv 8 lines, two bad
    assert re.search(r"aliexpress: 5 rows read, 4 written \([\d.]+k? rows/s\) - done", captured.err)
    assert re.search(r"aliexpress: 5 rows read, 4 written \([\d.]+k? rows/s\)\n", captured.err)
    assert re.search(r"aliexpress: 8 rows read, 6 written \([\d.]+k? rows/s\) - done", captured.err)
    assert sorted(os.listdir(out)) == ["prepare_summary.json", "spec.yaml", "test", "train"]
    summary = json.loads((out / "prepare_summary.json").read_text())
    assert summary["options"]["max_bad_fraction"] == 0.5 and summary["options"]["progress_every"] == 5


def test_data_prepare_passes_the_dataset_options(tmp_path, capsys):
    out = tmp_path / "am"
    assert main(["data", "prepare", "alimama", "--input", os.path.join(RAW, "alimama"), "--output", str(out),
                 "--max-bad-fraction", "0.5", "--test-day", "2017-05-12", "--conversion-window-hours", "22"]) == 0
    summary = json.loads((out / "prepare_summary.json").read_text())
    assert summary["options"]["test_day"] == "2017-05-12" and summary["options"]["conversion_window_hours"] == 22
    assert summary["rows_written"] == {"train": 14, "test": 1}


def test_data_prepare_errors_are_clear(tmp_path, capsys):
    args = ["--input", os.path.join(RAW, "alimama"), "--output", str(tmp_path / "o")]
    assert main(["data", "prepare", "alimama", *args, "--country", "NL"]) == 1
    assert "msmt data: error: --country applies to aliexpress only, not to alimama" in capsys.readouterr().err
    assert main(["data", "prepare", "alimama", *args]) == 1
    err = capsys.readouterr().err
    assert "raw_sample.csv: 6 of 28 lines (21.43%) are bad" in err and "more than --max-bad-fraction 0.01" in err
    assert "raw_sample.csv:22: 5 fields, the header has 6" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        main(["data", "prepare", "criteo", *args])


def test_no_example_shuffle_reaches_the_example_gen_config(tmp_path):
    from pipeline import checked_example_gen
    from pipeline.cli import _pipeline_config, build_parser
    from pipeline.pipeline import create_pipeline

    (tmp_path / "d.csv").write_text("x\n1\n")
    base = ["run", "--data", str(tmp_path / "*.csv"), "--spec", "synthetic", "--output", str(tmp_path / "out")]
    for extra, expected in (([], True), (["--no-example-shuffle"], False)):
        config = _pipeline_config(build_parser().parse_args(base + extra))
        assert config.shuffle_examples is expected
        gen = next(c for c in create_pipeline(config).components if c.id == "CsvExampleGen")
        custom = gen.exec_properties["custom_config"]
        settings = checked_example_gen.read_custom_config({"custom_config": custom})
        assert settings["shuffle"] is expected


@pytest.mark.parametrize("flag, text, key", [
    ("--model-config", "embedding_dimm: 8\n", "embedding_dimm"),
    ("--train-config", "learning_rate: 0.01\nepoch: 2\n", "epoch"),
    ("--train-config", "weighting: {strategy: gradnrom}\n", "gradnrom"),
    ("--blessing", "max_auc_dropp: 0.01\n", "max_auc_dropp"),
])
def test_a_typo_in_a_config_file_fails_before_any_component_naming_file_and_key(tmp_path, capsys, flag, text, key):
    data = tmp_path / "d.csv"
    data.write_text("x\n1\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code = main(["run", "--data", str(data), "--spec", "synthetic", "--output", str(tmp_path / "out"), flag, str(bad)])
    assert code == 1
    err = capsys.readouterr().err
    assert str(bad) in err and key in err, err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_model_config_naming_an_undeclared_task_fails_before_any_component_naming_it(tmp_path, capsys):
    spec = tmp_path / "feed.yaml"
    spec.write_text("name: feed\nfeatures:\n  - {name: user_id, role: id}\n  - {name: tab, role: scenario, "
                    "values: [a]}\ntasks:\n  - {name: click, label: is_click}\n"
                    "  - {name: like, label: is_like, after: click}\n")
    data = tmp_path / "d.csv"
    data.write_text("user_id,tab,is_click,is_like\nu,a,1,1\n")
    model_config = tmp_path / "ektm.yaml"
    model_config.write_text("transmit_to: [like, conv_click]\n")
    code = main(["run", "--data", str(data), "--spec", str(spec), "--output", str(tmp_path / "out"), "--model", "ektm",
                 "--model-config", str(model_config)])
    err = capsys.readouterr().err
    assert code == 1 and "names the task 'conv_click'" in err and "click, like (after click)" in err \
        and str(spec) in err, err
    assert not (tmp_path / "out").exists()  # nothing ran
