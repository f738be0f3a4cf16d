import json

from scripts import throughput


def test_throughput_writes_the_table_and_json(tmp_path, capsys):
    out = tmp_path / "tp.json"
    code = throughput.main(
        ["--preset", "small", "--sizes", "1", "8", "--seconds", "0.05", "--json", str(out)]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["single_steps_per_s"] > 0
    assert set(result["vector_steps_per_s"]) == {"1", "8"}
    assert result["ratio"] == result["vector_steps_per_s"]["8"] / result["single_steps_per_s"]
    breakdown = result["breakdown"]
    assert breakdown["needed_for_100x_steps_per_s"] == 100 * result["single_steps_per_s"]
    assert breakdown["bare_step_us_per_user_one_thread_n1024"] > 0
    assert breakdown["single_env_us_per_step"] == 1e6 / result["single_steps_per_s"]
    printed = capsys.readouterr().out
    assert "user-steps/s" in printed and "ratio" in printed and "where the time goes" in printed


def test_against_a_folder_that_is_not_a_checkout_names_it(tmp_path):
    import pytest

    from decay_model.errors import ConfigError

    with pytest.raises(ConfigError, match="not a decaygym checkout"):
        throughput.main(["--against", str(tmp_path), "--rounds", "1"])
