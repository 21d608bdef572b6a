"""The client SDK installs and imports without torch, ray, cupy or the kernels."""

import subprocess
import sys


def test_client_imports_no_heavy_packages():
    code = (
        "import sys, lookalike.client\n"
        "bad = [m for m in ('ray', 'torch', 'cupy', 'lookalike.kernels', 'lookalike.nodes', 'lookalike.coordinator',"
        " 'av', 'cv2') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"lookalike.client pulled in: {out}"


def test_client_all_is_complete():
    import lookalike.client as c

    public = {n for n in dir(c) if not n.startswith("_") and n != "sdk"}
    assert public == set(c.__all__)
