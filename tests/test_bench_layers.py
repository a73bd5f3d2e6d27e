"""topo bench layers: the lone-layer method, interleaved rounds and the dense comparison run and add up."""

import pytest
import torch

from topo.bench import layers


def test_rounds_medians_and_ratios():
    res = layers.run_layers([(60, 50)], epsilon=3, batch=8, methods=("csr", "csr_rowmajor_io", "csr_lone"),
                            repeat=2, sgemm_n=64, rounds=3, log=lambda *_: None)
    assert len(res["rounds"]) == 3 and len(res["sgemm_rounds"]) == 3
    csr = next(c for c in res["cases"] if c["method"] == "csr")
    assert sorted(csr["ms_rounds"])[1] == pytest.approx(csr["ms"])       # median of the three rounds

    def ms(r, method):
        return next(c["ms"] for c in r if c["method"] == method)

    per_round = [ms(r, "csr_lone") / ms(r, "csr") for r in res["rounds"]]
    assert layers._median_ratio(res, (60, 50), "csr_lone", "csr")[0] == pytest.approx(sorted(per_round)[1])
    lines = layers.ratios(res)
    assert len(lines) == 1 and "csr_rowmajor_io / csr" in lines[0] and "csr_lone at" in lines[0]


def test_compare_dense_reports_each_method():
    rows = layers.compare_dense([(80, 40)], densities=(0.05, 0.5), batch=4, repeat=2, log=lambda *_: None)
    assert [r["density"] for r in rows] == [0.05, 0.5]
    for r in rows:
        assert r["dense_over_csr"] == pytest.approx(r["nn_linear"] / r["csr"])


def test_cuda_request_without_cuda_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from topo.cli import main

    assert main(["bench", "layers", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
