"""Numbers and words the CLI prints mean what they say (issue 15.7)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from latentzarr.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_demo_ratio_words_hold_both_ways() -> None:
    from latentzarr.demo import compared

    assert compared(2.5, "X") == "2.50x smaller than X"
    assert compared(0.98, "X").startswith("1.02x larger than X")


def test_cost_sim_fraction_message_names_the_flag_and_defaults_are_called_defaults(tmp_path: Path) -> None:
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps({"results": [
        {"config": "adaptive", "cache_fraction": f, "image_hit_ratio": 0.5} for f in (0.01, 0.02)]}))
    runner = CliRunner()
    both = runner.invoke(cli, ["cost", "--sim-json", str(sim)])
    assert both.exit_code == 1 and "--sim-fraction" in both.output, both.output
    one = runner.invoke(cli, ["cost", "--sim-json", str(sim), "--sim-fraction", "0.02"])
    assert one.exit_code == 0 and "Measured figures given here" in one.output, one.output
    plain = runner.invoke(cli, ["cost"])
    assert plain.exit_code == 0 and "Our measured figures" not in plain.output
    assert "Figures measured in this project (defaults;" in plain.output


def test_trace_analyze_says_why_s3fifo_has_no_figure(tmp_path: Path) -> None:
    runner = CliRunner()
    trace = tmp_path / "t.parquet"
    synth = runner.invoke(cli, ["trace", "synth", "--requests", "2000", "--days", "2", "--out", str(trace)])
    assert synth.exit_code == 0, synth.output
    doc = tmp_path / "a.json"
    out = runner.invoke(cli, ["trace", "analyze", str(trace), "--json", str(doc)])
    assert out.exit_code == 0, out.output
    s3_line = next(line for line in out.output.splitlines() if line.startswith("S3-FIFO miss ratio"))
    assert "nan" not in s3_line and " - " in s3_line
    missing = sum(v is None or (isinstance(v, float) and math.isnan(v)) for v in
                  json.loads(doc.read_text())["mrc"]["s3fifo"])
    assert missing and f"(S3-FIFO -: {missing} cache sizes hold fewer than 20 objects" in out.output


def test_readme_storage_claim_is_our_measurement() -> None:
    readme = (ROOT / "README.md").read_text()
    bench = (ROOT / "BENCHMARKS.md").read_text()
    assert "4-6x" not in readme
    for figure in ("36.7%", "15.9%", "50.9%", "34.9%"):  # float16 / bfloat16 at 512 and 1024, from BENCHMARKS.md
        assert figure in readme and figure in bench
    assert "78.7%" in readme and "LatentBox paper" in readme  # where the larger figure comes from


def test_store_info_documents_data_reduction_as_a_fraction() -> None:
    from latentzarr.store import LatentStore

    doc = " ".join(LatentStore.info.__doc__.split())
    assert "a fraction, not a percentage" in doc and "including rows no id points to" in doc


def test_info_totals_count_garbage_in_every_column(tmp_path: Path) -> None:
    """After a rewrite the old rows are garbage (until a vacuum): the total's stored bytes count them, and so
    must its data reduction and the table's "of PNG" column."""
    import numpy as np

    from latentzarr.cli.store_cmds import format_info
    from latentzarr.store import LatentStore

    st = LatentStore.create(tmp_path / "g.zarr")
    latents = np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float16)
    st.put(["a", "b"], latents, model="m", source_bytes=[5000, 5000])
    st.rewrite(["a", "b"], latents, precision="q8")
    info = st.info()
    assert [a["images"] for a in info["arrays"]] == [0, 2]  # the lossless array holds only garbage now
    assert math.isclose(info["data_reduction"], 1 - info["stored_bytes"] / info["source_bytes"])
    total = next(line for line in format_info(info).splitlines() if line.startswith("total"))
    assert total.split()[-1] == f"{info['stored_bytes'] / info['source_bytes']:.0%}"
