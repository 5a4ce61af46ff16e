"""The machine record: two hosts that a virtual machine names alike must still be told apart."""

from srcr.utils.machine import cpu_model, describe, machine_info


def test_cpu_model_carries_family_model_and_stepping():
    fields = {"model name": "AMD EPYC", "cpu family": "25", "model": "1", "stepping": "1"}
    assert cpu_model(fields) == "AMD EPYC (family 25, model 1, stepping 1)"
    assert cpu_model({**fields, "model": "17"}) != cpu_model(
        fields
    )  # Zen 3 vs Zen 4 under one name
    assert cpu_model({"model name": "Some CPU"}) == "Some CPU"


def test_machine_record_names_the_vector_isa():
    info = machine_info("cpu")
    assert info["cpu_isa"] and info["cpu_isa"] != "?"
    line = describe(
        {
            **info,
            "cpu": "AMD EPYC (family 25, model 1, stepping 1)",
            "cpu_isa": "AVX2",
            "cores": 2,
            "threads": 1,
        }
    )
    assert line.startswith(
        "cpu: AMD EPYC (family 25, model 1, stepping 1) AVX2 x2, 1 thread, torch "
    )
