"""Rebuild BENCHMARKS.md: the summary, then every benchmark's report with its headings demoted.

Each benchmark's report lives in ``benchmarks/results/<name>.md`` (a ``#`` title,
``##`` sections): the question, the command, the commit and machine load it ran
at, the tables and what they mean. BENCHMARKS.md is
``benchmarks/results/summary.md`` (targets and verdicts) followed by those
fragments in :data:`ORDER` (any other fragment after them, by name), every
heading one level deeper. Never edit BENCHMARKS.md by hand.

    python scripts/build_benchmarks_md.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ORDER = (
    "user_path",
    "mnas_env",
    "latency",
    "scaling",
    "e2e_cost",
    "fnas_ablation",
    "uac_critic_quality",
    "search_efficiency",
    "proxy_quality",
    "anb_surrogate",
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
