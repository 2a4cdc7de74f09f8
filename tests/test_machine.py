"""CPU identification and features recorded in every report."""

from sapnet_export.machine import (BF16_FLAGS, CPU_FLAGS, cpu_features, cpu_flags, describe_machine,
                                   machine_info, same_machine)


def test_flags_are_read_from_a_cpuinfo_file(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_vnni amx_tile\n")
    assert cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512f", "avx512_vnni", "amx_tile"}
    assert cpu_flags(str(tmp_path / "none")) == frozenset()


def test_features_of_this_machine_agree_with_proc_cpuinfo():
    flags = cpu_flags()
    features = cpu_features()
    assert features["flags"] == sorted(f for f in CPU_FLAGS if f in flags)
    assert features["native_bf16"] == any(f in flags for f in BF16_FLAGS)
    if features["openvino"] is not None:  # OpenVINO's CPU plugin always offers fp32
        assert "FP32" in features["openvino"]


def test_identity_ignores_the_description():
    info = machine_info()
    assert same_machine(info, {**info, "cpu_features": {}})
    assert not same_machine(info, {**info, "threads": info["threads"] + 1})
    assert info["cpu"] in describe_machine()
