"""The installed package, seen from outside the checkout: importable, light at import time, CLI on PATH."""
import json
import subprocess
import sys

HEAVY = ("tensorboard", "torch.utils.tensorboard", "matplotlib", "av", "scipy.io", "skimage", "trimesh", "plyfile")


def test_import_from_another_directory_is_light(tmp_path):
    code = ("import json, sys, hypersiren, hypersiren.tasks, hypersiren.cli; "
            "hypersiren.cli.build_parser(); "
            f"print(json.dumps([hypersiren.Siren.__module__, sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    module, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert module == "hypersiren.nn.siren"
    assert heavy == []


def test_every_subpackage_is_a_regular_package():
    import pathlib

    import hypersiren

    root = pathlib.Path(hypersiren.__file__).parent
    folders = [p for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))]
    assert folders and all((p / "__init__.py").exists() for p in folders)
