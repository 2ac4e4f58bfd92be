"""benchmarks/face_loading.py's smoke run: a few dozen synthetic JPEGs, the cache built by the library's builder,
a few light-model training steps with 0 and 2 loader processes, and the table and JSON it reports."""
import json
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "face_loading.py"


def test_face_loading_quick(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYPERSIREN_CACHE", str(tmp_path / "elsewhere"))  # the benchmark points it at its workdir
    bench = runpy.run_path(str(SCRIPT), run_name="face_loading")
    out, workdir = tmp_path / "out", tmp_path / "work"
    assert bench["main"](["--quick", "--out", str(out), "--workdir", str(workdir)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["generation"]["generated"] and len(list((workdir / "faces").glob("*.jpg"))) == 48

    build = results["build"]
    assert build["files"] == build["cached"] == 48 and build["sec"] > 0 and build["images_per_sec"] > 0
    assert Path(build["cache_file"]).parent == workdir / "cache" / "faces"
    assert build["cache_bytes"] >= 48 * 3 * 16 * 16  # the uint8 faces, and a header
    assert 0 < build["rss_before"] <= build["peak_rss"]

    train = results["train"]
    assert [row["workers"] for row in train] == [0, 2]
    for row in train:
        assert row["steps"] == 4 and row["batch_size"] == 32 and row["target_pixels"] == 256
        assert 0 < row["load_sec_per_step"] < row["sec_per_step"] and 0 < row["load_share"] < 1
        assert row["peak_rss"] > 0 and row["rss_anon_end"] > 0
    assert train[0]["worker_peak_rss"] == 0 < train[1]["worker_peak_rss"]

    table = capsys.readouterr().out
    assert "| cache build (library builder, 48 faces) |" in table and "| data-loading share |" in table
    assert (out / "results.md").read_text().strip() == table[table.index("Face cache of"):].strip()

    # a second run reuses the generated folder and builds the cache again from scratch
    assert bench["main"](["--quick", "--out", str(out), "--workdir", str(workdir), "--workers", "0"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert not again["generation"]["generated"] and again["build"]["cached"] == 48
    assert [row["workers"] for row in again["train"]] == [0]
