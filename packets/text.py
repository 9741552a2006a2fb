"""Free text made inert for Slack's markup, the one rule for every surface.

Slack reads `<…>` as a link, a mention or a broadcast (`<https://x|y>`, `<@U1>`, `<!channel>`) and
`&` as the start of an entity; its formatting reference says to escape exactly these three
characters as `&amp;`, `&lt;` and `&gt;`, and nothing else (it does not decode other entities).
Text a person typed (a reason, a checkpoint name) passes through `inert` wherever it is put into
a message, so it always shows as typed and never pings or disguises a link.
"""

from __future__ import annotations


def inert(value: object) -> str:
    """`value` as text that Slack shows literally."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
