"""Chunks sharded over several local devices give the single-device results, with the chunk
size chosen by the caller or automatically (from the memory the devices report).

Four CPU devices are simulated in a subprocess (XLA_FLAGS must be set before JAX starts).
Across device counts float32 reductions may differ in the last bits, so results agree to 1e-6
relative; for a fixed device count and chunk shape they are bit-identical.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from conftest import TINY

import lazyrich

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    import lazyrich
    tiny = json.loads(sys.argv[1])
    ds = lazyrich.sweep("grokking", alpha=[0.5, 1.0, 2.0], seed=[0, 1, 2], chunk_size=5,
                        progress=False, **tiny)
    again = lazyrich.sweep("grokking", alpha=[2.0, 1.0, 0.5], seed=[2, 1, 0], chunk_size=5,
                           progress=False, **tiny)
    auto = lazyrich.sweep("grokking", alpha=[0.5, 1.0, 2.0], seed=[0, 1, 2], progress=False,
                          **tiny)
    print(json.dumps({"devices": jax.local_device_count(),
                      "attrs_devices": int(ds.attrs["devices"]),
                      "test_loss": ds.test_loss.values.tolist(),
                      "auto": auto.test_loss.values.tolist(),
                      "auto_plan": json.loads(auto.attrs["chunk_plan"]),
                      "reordered": again.test_loss.sel(alpha=[0.5, 1.0, 2.0],
                                                       seed=[0, 1, 2]).values.tolist()}))
""")


def test_four_devices_match_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(TINY)], env=env,
                            capture_output=True, text=True, check=True)
    sharded = json.loads(result.stdout.strip().splitlines()[-1])
    assert sharded["devices"] == 4 and sharded["attrs_devices"] == 4
    single = lazyrich.sweep("grokking", alpha=[0.5, 1.0, 2.0], seed=[0, 1, 2], chunk_size=5,
                            progress=False, **TINY)
    np.testing.assert_allclose(sharded["test_loss"], single.test_loss.values, rtol=1e-6)
    np.testing.assert_allclose(sharded["reordered"], sharded["test_loss"], rtol=1e-6)
    # automatic chunking (the default) on four devices: one padded chunk, sharded four ways
    assert sharded["auto_plan"]["devices"] == 4 and sharded["auto_plan"]["chosen_by"] == \
        "memory budget"
    np.testing.assert_allclose(sharded["auto"], single.test_loss.values, rtol=1e-6)
