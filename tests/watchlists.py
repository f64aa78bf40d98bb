"""Watchlist text for tests, pointing at the local servers."""

from __future__ import annotations


def watchlist(
    *,
    feeds: list[str],
    hook: str | None = None,
    fetch_articles: bool = False,
    query: str = "@russia AND embassy",
    extra: str = "",
) -> str:
    feed_tables = "".join(f'[[feeds]]\nurl = "{u}"\ninterval = "1m"\n\n' for u in feeds)
    notifier = (
        f'[notifiers.hook]\ntype = "webhook"\nurl = "{hook}"\nsecret = "s3cret-hmac"\n'
        if hook
        else '[notifiers.hook]\ntype = "console"\n'
    )
    return f"""
[monitor]
database = "newsmon.db"
fetch_articles = {str(fetch_articles).lower()}
extract_workers = 1
timeout = "10s"

{feed_tables}
[entities]
russia = ["Russia", "Russian", "Russians", "Moscow", "Kremlin"]

[[rules]]
name = "russia-embassy"
query = '{query}'
notify = ["hook"]

{notifier}
{extra}
"""
