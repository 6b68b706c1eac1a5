"""The one table of limits: the README shows exactly gar_tool.limits.LIMITS, every flag it names
exists on the commands, and the defaults of the code that enforces a limit come from the table."""

from __future__ import annotations

import re

from conftest import REPO
from gar_tool.limits import LIMITS, limit, markdown_table


def test_readme_table_is_the_limits_table():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- limits-table:start -->\n(.*?)\n<!-- limits-table:end -->", text, re.S)
    assert found, "README lacks the limits table markers"
    assert found.group(1).strip() == markdown_table().strip(), (
        "README limits table differs from gar_tool.limits.LIMITS; paste gar_tool.limits.markdown_table()")
    assert len(found.group(1).strip().splitlines()) == len(LIMITS) + 2


def test_every_flag_exists_and_defaults_come_from_the_table():
    from gar_tool.cli import build_parser
    from gar_tool.integrations.http.server import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_REQUEST_BYTES
    from gar_tool.tools import ImageInputConfig

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    serve, mcp = sub.choices["serve"], sub.choices["mcp"]
    options = {o for a in serve._actions for o in a.option_strings} | {o for a in mcp._actions for o in a.option_strings}
    for name, lim in LIMITS.items():
        if lim.flag:
            assert lim.flag in options, f"{name}: flag {lim.flag} is not an option of gar serve / gar mcp"
    args = serve.parse_args([])
    assert args.max_image_pixels == limit("image_pixels") and int(args.max_image_mb * (1 << 20)) == limit("image_bytes")
    assert int(args.max_request_mb * (1 << 20)) == limit("request_bytes") == DEFAULT_MAX_REQUEST_BYTES
    assert args.body_timeout == limit("body_read_seconds") == DEFAULT_BODY_TIMEOUT
    cfg = ImageInputConfig(allowed_roots=[])
    assert (cfg.max_pixels, cfg.max_bytes) == (limit("image_pixels"), limit("image_bytes"))
