"""The benchmark runs end to end and reports every figure the README quotes.
(Speed itself is never asserted: targets live in `python -m bnlib bench`.)"""

import json

import pytest

from bnlib import bench


def test_flop_count_of_the_article_cnn():
    # conv1 2.46M + conv2 13.1M + dense 4.19M + logits 10k multiply-adds
    assert bench.FORWARD_FLOPS == 2 * 19_769_344
    assert bench.TRAIN_FLOPS == 3 * bench.FORWARD_FLOPS - 2 * 2_457_600


@pytest.mark.slow
def test_bench_cli_writes_a_complete_report(tmp_path):
    from bnlib.__main__ import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--data", "synthetic", "--repeats", "1", "--steps", "2",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["data"]["kind"] == "synthetic"
    assert report["matmul_peak_gflops"]["median"] > 0
    for run_id in ("0", "11"):
        entry = report["configs"][run_id]
        for contender in ("a_tf1_feed_dict", "b_keras_fit", "c_bnlib"):
            assert entry[contender]["median"] > 0
        assert entry["ratio_c_over_a"] > 0 and entry["ratio_c_over_b"] > 0
        assert set(entry["ms_per_step"]) == {"forward", "forward_backward",
                                            "step_keras_adam", "step_fused_adam"}
        assert report["grid"]["images_per_second"][run_id] > 0
    assert report["bn_overhead_config11_over_config0"] > 0
    assert report["matmul_bf16_gflops"]["median"] > 0
    for entry in report["configs"].values():
        assert entry["b_spread"] >= 0
        assert set(entry["fraction_of_peaks"]["c_bnlib"]) == {"fp32", "bf16"}
        # (d) runs exactly where the CPU has native bfloat16; otherwise the
        # report says why it is absent
        assert ("d_bnlib_bf16" in entry) == report["native_bfloat16"]
    assert ("bfloat16_note" in report) == (not report["native_bfloat16"])
    table = bench.markdown_table(report)
    assert "| 0 (no BN) |" in table and "| 11 (BN conv+dense, dropout 0.4) |" in table


@pytest.mark.slow
def test_bench_normalizations_times_every_network_of_chapter_08(tmp_path):
    """Every network of the smallbatch grid and chapter 05's two references,
    timed in one process; the ratios are to the network without normalization."""
    from bnlib.__main__ import main
    from bnlib.config import get_grid

    out = tmp_path / "normalizations.json"
    assert main(["bench", "--normalizations", "--data", "synthetic", "--repeats", "2",
                 "--steps", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["runs"]) == ["std-none-d0", "std-bn-both-d0"] + [
        run.name for run in get_grid("smallbatch").runs]
    assert report["threads"] == 1 and report["protocol"] == "medium"
    assert report["runs"]["std-none-d0"]["ratio_to_no_norm"] == 1.0
    for row in report["runs"].values():
        assert len(row["repeats"]) == 2 and row["min"] <= row["median"] <= row["max"]
        assert row["ratio_to_no_norm"] > 0
