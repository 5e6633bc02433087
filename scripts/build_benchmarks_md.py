"""Rebuild BENCHMARKS.md: the summary, then every benchmark's write-up with its headings demoted.

Each benchmark script's figures live in ``benchmarks/results/<name>.md`` (a ``#``
title and ``##`` sections); BENCHMARKS.md is ``benchmarks/results/summary.md``
followed by those fragments in :data:`ORDER`, every heading one level deeper.

    python scripts/build_benchmarks_md.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ORDER = (
    "user_path",
    "search_efficiency",
    "fnas_ablation",
    "e2e_cost",
    "scaling",
    "uac_critic_quality",
    "anb_surrogate",
    "mnas_env",
    "proxy_quality",
    "latency",
)


def demote(text: str) -> str:
    """One more ``#`` on every Markdown heading outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#+ ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def build() -> str:
    parts = [(RESULTS / "summary.md").read_text().rstrip() + "\n"]
    names = list(ORDER) + sorted(
        p.stem for p in RESULTS.glob("*.md") if p.stem not in (*ORDER, "summary")
    )
    for name in names:
        text = (RESULTS / f"{name}.md").read_text().rstrip()
        parts.append(f"\n<!-- from benchmarks/results/{name}.md -->\n{demote(text)}\n")
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "BENCHMARKS.md").write_text(build())
