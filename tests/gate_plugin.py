"""A test plugin whose ``gated`` sampler lets a test decide when a run is mid-cell.

With ``SAMPLERLAB_TEST_GATE=DIR`` set, building the sampler of cell ``N`` (its ``cell``
parameter) writes ``DIR/cell-N.started``, then waits until the test creates
``DIR/cell-N.go``. A test that sees ``cell-2.started`` knows that cell 1 is written and
cell 2 is running, and can send SIGINT or SIGKILL at exactly that moment. Without the
variable the sampler never waits. Either way it is samplerlab's top-k (k=3): every cell
shares one compiled program.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import samplerlab

GATE_ENV = "SAMPLERLAB_TEST_GATE"
MAX_WAIT_S = 300


def gated(cell: int, temperature: float = 1.0, seed: int | None = None):
    """Top-k (k=3) that, under a test's gate, waits for the test before cell ``cell`` runs."""
    from samplerlab.samplers.builtin import top_k

    gate = os.environ.get(GATE_ENV)
    if gate:
        wait_for_the_test(Path(gate), cell)
    return top_k(k=3, temperature=temperature, seed=seed)


def wait_for_the_test(gate: Path, cell: int) -> None:
    (gate / f"cell-{cell}.started").touch()
    go = gate / f"cell-{cell}.go"
    deadline = time.monotonic() + MAX_WAIT_S
    while not go.exists():  # a signal from the test interrupts this sleep
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never created {go}")
        time.sleep(0.01)


@samplerlab.hookimpl
def register_samplers(register):
    register("gated", gated)
