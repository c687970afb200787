"""``streamscore models import`` as a user runs it: output and exit codes (0, 2, 3)."""

from __future__ import annotations

import joblib
import pytest
from click.testing import CliRunner

from app.cli import main
from model_store import ModelStore
from tests.notebook_models import LABEL, churn_data, fitted_churn_model

GATE = {"min": {"roc_auc": 0.7}, "max": {}, "compare_metric": ""}


@pytest.fixture
def files(tmp_path):
    frame = churn_data(300)
    joblib.dump(fitted_churn_model(frame.iloc[:200]), tmp_path / "model.joblib")
    frame.iloc[200:].to_csv(tmp_path / "test.csv", index=False)
    return tmp_path / "model.joblib", tmp_path / "test.csv"


def invoke(cfg, *args: str):
    return CliRunner().invoke(main, ["--config", str(cfg.source), "models", *args])


def test_cli_import_promote_prints_schema_metrics_and_verdict(make_config, files):
    cfg = make_config(
        model_store={"model_name": "churn"}, training={"label_column": LABEL, "gate": GATE}
    )
    model, data = files
    result = invoke(cfg, "import", str(model), "--data", str(data), "--promote")
    assert result.exit_code == 0, result.output
    for text in (
        f"churn v1 imported from joblib {model}",
        "3 features: age: int, income: float, region: category",
        "metrics on 100 rows",
        "roc_auc",
        "quality gate passed",
        "promoted churn v1 to 'production'",
    ):
        assert text in result.output
    shown = invoke(cfg, "show", "production")
    assert f"imported: joblib {model} (sha256 " in shown.output
    assert "gate: passed" in shown.output
    assert "category (" in shown.output  # the column's pandas dtype beside the feature dtype
    # The imported rows stand for the training data: the version's reference profile.
    assert "reference profile (" in shown.output and "categorical" in shown.output
    assert "predictions profiled: 100 held-out rows" in shown.output


def test_cli_import_gate_failure_exits_3_and_keeps_a_candidate(make_config, files):
    strict = {"min": {"roc_auc": 1.1}, "max": {}, "compare_metric": ""}
    cfg = make_config(
        model_store={"model_name": "churn"}, training={"label_column": LABEL, "gate": strict}
    )
    model, data = files
    result = invoke(cfg, "import", str(model), "--data", str(data), "--promote")
    assert result.exit_code == 3, result.output
    assert "gate failed: churn v1 stays a candidate (no production model yet)" in result.output
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 1}


def test_cli_import_without_data_or_schema_exits_2_saying_what_to_pass(make_config, files):
    cfg = make_config(model_store={"model_name": "churn"})
    model, _ = files
    result = invoke(cfg, "import", str(model))
    assert result.exit_code == 2
    assert "cannot tell the model's feature schema" in result.output
    assert "pass --data FILE" in result.output and "--schema FILE" in result.output


def write_examples(path, *lines: str):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_import_with_examples_judges_them_and_stores_them_with_the_version(
    make_config, files, tmp_path
):
    cfg = make_config(
        model_store={"model_name": "churn"}, training={"label_column": LABEL, "gate": GATE}
    )
    model, data = files
    examples = write_examples(
        tmp_path / "examples.jsonl",
        '{"name": "no income or region", "event": {"id": "x", "age": 30}, '
        '"expect": {"dead_letter": "schema"}}',
    )
    result = invoke(
        cfg, "import", str(model), "--data", str(data), "--examples", str(examples), "--promote"
    )
    assert result.exit_code == 0, result.output
    store = ModelStore.from_config(cfg)
    manifest = store.manifest("production")
    assert "examples.jsonl" in manifest.files
    assert store.read_file(manifest, "examples.jsonl") == examples.read_bytes()


def test_cli_import_whose_example_fails_exits_3_naming_it(make_config, files, tmp_path):
    cfg = make_config(
        model_store={"model_name": "churn"}, training={"label_column": LABEL, "gate": GATE}
    )
    model, data = files
    examples = write_examples(
        tmp_path / "examples.jsonl",
        '{"name": "half an event", "event": {"id": "x", "age": 30}, "expect": {"class": 1}}',
    )
    result = invoke(
        cfg, "import", str(model), "--data", str(data), "--examples", str(examples), "--promote"
    )
    assert result.exit_code == 3, result.output
    assert "half an event" in result.output
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 1}


def test_cli_import_with_a_malformed_examples_file_exits_2_before_registering(
    make_config, files, tmp_path
):
    cfg = make_config(model_store={"model_name": "churn"}, training={"label_column": LABEL})
    model, data = files
    examples = write_examples(tmp_path / "examples.jsonl", "{not json")
    result = invoke(cfg, "import", str(model), "--data", str(data), "--examples", str(examples))
    assert result.exit_code == 2, result.output
    assert "--examples" in result.output
    assert ModelStore.from_config(cfg).versions() == []


def test_a_regressor_imported_with_the_shipped_gate_is_judged_on_regression_metrics(
    make_config, tmp_path
):
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from streamscore.config import DEFAULT_GATES

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame["y"] = 3 * frame["a"] - frame["b"] + rng.normal(scale=0.1, size=300)
    model = LinearRegression().fit(frame[["a", "b"]].iloc[:200], frame["y"].iloc[:200])
    joblib.dump(model, tmp_path / "reg.joblib")
    frame.iloc[200:].to_csv(tmp_path / "reg.csv", index=False)
    shipped = DEFAULT_GATES["classification"]  # config.toml's gate, as shipped
    cfg = make_config(
        model_store={"model_name": "reg"},
        training={
            "label_column": "y",
            "gate": {
                "min": dict(shipped.min),
                "max": dict(shipped.max),
                "compare_metric": shipped.compare_metric,
                "tolerance": shipped.tolerance,
            },
        },
    )
    result = invoke(
        cfg, "import", str(tmp_path / "reg.joblib"), "--data", str(tmp_path / "reg.csv")
    )
    assert result.exit_code == 0, result.output
    assert "quality gate passed" in result.output
    assert "r2" in result.output and "roc_auc" not in result.output
