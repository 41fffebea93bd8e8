"""Names and paths from configs cannot leave the output directory (issue #7, safety). Pure unit tests."""

import os

import pytest

from pipeline.config import PipelineConfig, PipelineConfigError
from pipeline.paths import check_config_paths, derived_path_keys, inside, safe_name

UNSAFE_NAMES = ["", ".", "..", "../evil", "a/../../b", "evil/..", "/tmp/x", "/", "sub/dir", "..\\evil",
                "C:\\x", "C:x", "a\x00b", "a\nb", "\x7f"]


@pytest.mark.parametrize("name", ["msmt", "shared_bottom-v2", "A.b_c", "..evil", "x..", "name with space"])
def test_safe_name_accepts_plain_names(name):
    assert safe_name(name, "serving_model_name") == name


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_safe_name_rejects_paths_naming_key_and_value(name):
    with pytest.raises(PipelineConfigError) as err:
        safe_name(name, "serving_model_name")
    assert "serving_model_name" in str(err.value) and repr(name) in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("value", [None, 3, b"msmt", ["msmt"]])
def test_safe_name_rejects_non_strings(value):
    with pytest.raises(PipelineConfigError, match="pipeline_name"):
        safe_name(value, "pipeline_name")


def test_inside_accepts_root_and_descendants(tmp_path):
    root = str(tmp_path / "run")
    assert inside(root, root, "k") == root
    assert inside(root, os.path.join(root, "serving", "msmt"), "k") == os.path.join(root, "serving", "msmt")
    assert inside(root + "/", os.path.join(root, "a", "..", "b"), "k") == os.path.join(root, "b")
    assert inside("gs://bucket/run", "gs://bucket/run/serving/m", "k") == "gs://bucket/run/serving/m"


@pytest.mark.parametrize("path", ["{root}/../x", "{root}/serving/../../x", "{root}-sibling", "{root}x/y", "/etc/passwd",
                                  "{root}/a/../../../etc"])
def test_inside_rejects_escapes_naming_key(tmp_path, path):
    root = str(tmp_path / "run")
    with pytest.raises(PipelineConfigError) as err:
        inside(root, path.format(root=root), "push_dir")
    assert "push_dir" in str(err.value) and "outside the output directory" in str(err.value)


@pytest.mark.parametrize("root,path", [("gs://b/run", "gs://b/run/../other"), ("gs://b/run", "gs://b/runx"),
                                       ("gs://b/run", "s3://b/run/x"), ("gs://b/run", "/b/run/x"),
                                       ("/b/run", "gs://b/run/x")])
def test_inside_uris(root, path):
    with pytest.raises(PipelineConfigError, match="k: "):
        inside(root, path, "k")


def test_inside_rejects_nul(tmp_path):
    with pytest.raises(PipelineConfigError, match="k: "):
        inside(str(tmp_path), str(tmp_path) + "/a\x00b", "k")


def _config(tmp_path, **kw):
    data = tmp_path / "data" / "impressions.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("user_id\n1\n")
    return PipelineConfig(data=str(data), spec="synthetic", output=str(tmp_path / "out"), **kw)


def test_derived_path_keys_cover_every_output_path(tmp_path):
    keys = derived_path_keys(_config(tmp_path))
    assert {"pipeline_root", "metadata_path", "serving_dir", "push_dir", "log_dir"} <= set(keys)


def test_default_config_validates(tmp_path):
    _config(tmp_path).validate()


@pytest.mark.parametrize("key,value", [("serving_model_name", "../evil"), ("pipeline_name", "/tmp/x"),
                                       ("serving_model_name", "/abs"), ("pipeline_name", ".."),
                                       ("serving_model_name", "a/b"), ("pipeline_name", "x\x00")])
def test_validate_rejects_unsafe_names(tmp_path, key, value):
    config = _config(tmp_path, **{key: value})
    with pytest.raises(PipelineConfigError) as err:
        config.validate()
    assert key in str(err.value) and repr(value) in str(err.value)


def test_validate_rejects_unsafe_names_before_touching_data(tmp_path):
    config = PipelineConfig(data=str(tmp_path / "missing-*.csv"), spec="synthetic", output=str(tmp_path),
                            serving_model_name="../evil")
    with pytest.raises(PipelineConfigError, match="serving_model_name"):
        config.validate()


def test_validate_rejects_unsafe_spec_name(tmp_path):
    spec_text = open(os.path.join(os.path.dirname(__file__), "..", "features", "specs", "synthetic.yaml")).read()
    assert "name: synthetic\n" in spec_text
    spec = tmp_path / "evil.yaml"
    spec.write_text(spec_text.replace("name: synthetic\n", "name: ../evil\n", 1))
    config = _config(tmp_path)
    config = PipelineConfig(data=config.data, spec=str(spec), output=config.output)
    with pytest.raises(PipelineConfigError) as err:
        config.validate()
    assert f"spec {spec}: name" in str(err.value) and "'../evil'" in str(err.value)


def test_check_config_paths_catches_a_derived_path_that_escapes(tmp_path):
    class Escaping(PipelineConfig):
        @property
        def report_dir(self):  # a future derived path built wrongly
            return os.path.join(self.output, "..", "elsewhere")

    config = Escaping(data="x.csv", spec="synthetic", output=str(tmp_path / "out"))
    with pytest.raises(PipelineConfigError, match="report_dir"):
        check_config_paths(config)
