"""A notebook view stays bounded however much there is: a project keeps a branch per failed run
(hundreds after a while), a result may carry thousands of sample rows or timings; the views
list the first ones and count the rest."""

from __future__ import annotations

import dataclasses

import phlo
from phlo import display

MANY = display.LISTED * 3


def test_a_lakehouse_with_many_branches_and_tags_lists_the_newest(lh: phlo.Lakehouse) -> None:
    for i in range(MANY):
        lh.create_branch(f"pipeline-run-{i:03d}")
        lh.create_tag(f"v{i:03d}")
    markup = lh._repr_html_()
    assert markup.count("pipeline-run-") == display.LISTED - 1  # and main
    assert f"pipeline-run-{MANY - 1:03d}" in markup  # the newest are listed
    assert f"… and {MANY + 1 - display.LISTED:,} more branches" in markup
    assert markup.count(">v0") == display.LISTED
    assert f"… and {MANY - display.LISTED:,} more tags" in markup
    text = repr(lh)
    assert text.count("pipeline-run-") <= 8 and f"{MANY + 1:,} in all" in text


@dataclasses.dataclass
class _Result(display.HtmlRepr):
    sample: list[dict[str, object]]
    timings: dict[str, float]


def test_a_result_with_long_lists_and_mappings_shows_the_first_entries() -> None:
    result = _Result(
        sample=[{"id": i, "note": f"<b>{i}</b>"} for i in range(100_000)],
        timings={f"step_{i}": float(i) for i in range(MANY)},
    )
    markup = result._repr_html_()
    assert markup.count("&lt;b&gt;") == display.LISTED and "<b>" not in markup
    assert f"… and {100_000 - display.LISTED:,} more rows" in markup
    assert markup.count("step_") == display.LISTED
    assert f"… and {MANY - display.LISTED:,} more entries" in markup
