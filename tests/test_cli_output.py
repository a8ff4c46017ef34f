"""Results printed where there is no terminal (a log, a pipe) stay readable: the metric
table keeps every cell name, heading and number whole on its line, in plain numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Long cell names and headings, and a rate in the thousands: what folded at 80 columns.
ROWS = [
    {"label": "top_k(k=40)", "status": "done", "perplexity": 31.25, "perplexity_ci_low": 30.0,
     "perplexity_ci_high": 32.5, "tokens_per_second": 6490.3, "distinct_2": 0.8125},
    {"label": "chain(processors=[{repetition_penalty: 1.2}, {top_p: 0.95}], pick=sample)",
     "status": "done", "perplexity": 54.5, "tokens_per_second": 123456.7,
     "distinct_2": 0.00001234},
]
PRINT = """
import json, sys
from samplerlab.cli.output import out
from samplerlab.metrics.scoring import summary_table
rows = json.loads(sys.argv[1])
out.print(summary_table(rows, columns=["perplexity", "tokens_per_second", "distinct_2"]))
"""


def test_metric_table_printed_to_a_pipe_keeps_names_headings_and_numbers_whole():
    # The console is made as the CLI makes it: at import, in a process whose stdout is a pipe.
    result = subprocess.run([sys.executable, "-c", PRINT, json.dumps(ROWS)], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=True,
                            env={**os.environ, "COLUMNS": "80"})  # as a CI log has it
    lines = result.stdout.splitlines()
    assert len(max(lines, key=len)) > 80  # wider than a terminal's 80 columns, not folded

    def one_line_with(*texts: str) -> bool:
        return any(all(text in line for text in texts) for line in lines)

    assert one_line_with("top_k(k=40)", "31.2", "6490", "0.812")
    assert one_line_with(ROWS[1]["label"], "54.5", "123457", "0.0000123")
    assert one_line_with("perplexity", "tokens per second", "distinct 2")
    assert "e+0" not in result.stdout and "e-0" not in result.stdout
