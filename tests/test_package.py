"""Packaging: embedviz installs with its kernels as ``embedviz.kernels`` and imports lightly."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_light():
    code = (
        "import sys, embedviz, embedviz.kernels;"
        "heavy = [m for m in ('bokeh', 'torch', 'numba', 'gensim', 'sklearn') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == ""


def test_public_names_resolve():
    import embedviz

    assert embedviz.TSNE.__name__ == "TSNE"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        embedviz.nope  # noqa: B018


@pytest.mark.slow
def test_wheel_installs_kernels_inside_embedviz(tmp_path):
    """Build the wheel, install it in a fresh venv and import from outside the tree."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("embedviz-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "embedviz/kernels/__init__.py" in names
    assert not any(n.startswith("kernels/") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    # dependencies (numpy, numba, ...) come from this environment, appended after the
    # fresh venv's own site-packages, so `embedviz` resolves to the installed wheel
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    code = (
        "import embedviz, embedviz.kernels, embedviz.kernels.tree, importlib.util;"
        "print(embedviz.__file__); print(importlib.util.find_spec('kernels'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, env=env
    )
    first, second = out.stdout.splitlines()
    assert first.startswith(str(site))
    assert second == "None"


def test_python_started_in_the_checkout_finds_the_kernels():
    """In the repository, `import embedviz` takes the checkout's embedviz/ (first on
    sys.path), which has no kernels/ inside: embedviz.kernels must still be the
    top-level kernels/ folder, as installed (the README's examples run from here)."""
    code = (
        "import sys\n"
        # no editable-install finder: only the checkout, as after a plain `pip install .`
        "sys.meta_path[:] = [f for f in sys.meta_path"
        " if '__editable__' not in getattr(f, '__module__', '')]\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import embedviz\n"
        "assert 'numba' not in sys.modules\n"
        "import embedviz.kernels.gradient as g\n"
        "print(g.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip()) == ROOT / "kernels" / "gradient.py"
