"""The watchlist: strict, with errors that name the key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.config import WebhookNotifierConfig, load_config
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

BASE = """
[[feeds]]
url = "https://example.org/feed.xml"
name = "Example"
tags = ["world"]

[entities]
russia = ["Russia", "Russian"]

[[rules]]
name = "r"
query = "@russia AND embassy"
notify = ["hook"]

[notifiers.hook]
type = "console"
"""

EMAIL = 'type = "email"\nhost = "127.0.0.1"\nfrom = "a@b.c"\nto = ["d@e.f"]\n'


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "w.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def test_example_watchlist_is_valid() -> None:
    """The shipped config.example.toml passes validation with no secret set."""
    config = load_config(ROOT / "config.example.toml")
    assert config.rule("russia-embassy") is not None
    assert len(config.feeds) >= 3


@pytest.mark.parametrize(
    ("edit", "path", "message"),
    [
        pytest.param(
            BASE.replace('notify = ["hook"]', 'notify = ["slak"]'),
            "rules[0].notify[0]",
            'no notifier named "slak"',
            id="dangling-notifier",
        ),
        pytest.param(BASE + "\n[monitor]\nintervall = '5m'\n", "monitor.intervall",
                     "unknown key", id="unknown-key"),
        pytest.param(BASE + "\n[monitor]\ninterval = '5 minutes'\n", "monitor.interval",
                     "expected a duration", id="bad-duration"),
        pytest.param(BASE + "\n[monitor]\nconcurrency = '8'\n", "monitor.concurrency",
                     "expected a whole number, got a string", id="wrong-type"),
        pytest.param(BASE.replace("https://example.org/feed.xml", "ftp://x/feed"),
                     "feeds[0].url", "expected an http", id="feed-scheme"),
        pytest.param(BASE.replace('query = "@russia AND embassy"', 'query = "@rusia AND x"'),
                     "rules[0].query", "rusia", id="unknown-entity"),
        pytest.param(BASE.replace('query = "@russia AND embassy"', 'query = "a AND"'),
                     "rules[0].query", "column", id="query-syntax"),
        pytest.param(BASE.replace('notify = ["hook"]', 'notify = []'),
                     "rules[0].notify", "at least one", id="no-notifier"),
        pytest.param(BASE.replace('notify = ["hook"]', 'notify = ["hook"]\nfeeds = ["asia"]'),
                     "rules[0].feeds[0]", "no feed name or tag", id="unknown-scope"),
        pytest.param(BASE.replace('type = "console"', 'type = "pager"'),
                     "notifiers.hook.type", "expected one of", id="notifier-type"),
        pytest.param(BASE.replace('type = "console"', 'type = "webhook"'),
                     "notifiers.hook.url", "is required", id="webhook-url-missing"),
        pytest.param(
            BASE.replace('notify = ["hook"]', 'notify = ["hook"]\nexamples.match = ["nothing"]'),
            "rules[0].examples.match[0]", "does not match", id="failing-example",
        ),
        pytest.param(BASE + '\n[[rules]]\nname = "r"\nquery = "x"\nnotify = ["hook"]\n',
                     "rules[1].name", "duplicate", id="duplicate-rule"),
        pytest.param(BASE + '[[feeds]]\nurl = "HTTPS://Example.ORG:443/feed.xml#top"\n',
                     "feeds[1].url", "the same feed as feeds[0]", id="duplicate-feed"),
        pytest.param("[monitor\n", "", "TOML syntax error", id="toml-syntax"),
        pytest.param(BASE.replace("https://example.org/feed.xml", "http://"),
                     "feeds[0].url", "with a host", id="feed-no-host"),
        pytest.param(BASE.replace("https://example.org/feed.xml", "http://x:99999/f"),
                     "feeds[0].url", "valid port", id="feed-bad-port"),
        pytest.param(BASE.replace('type = "console"', 'type = "webhook"\nurl = "hook"'),
                     "notifiers.hook.url", "expected an http", id="webhook-url"),
        pytest.param(BASE.replace('type = "console"', 'type = "webhook"\nurl = "ftp://x/"'),
                     "notifiers.hook.url", "expected an http", id="webhook-scheme"),
        pytest.param(BASE.replace('type = "console"', 'type = "slack"\nurl = "slack"'),
                     "notifiers.hook.url", "expected an http", id="slack-url"),
        pytest.param(BASE.replace('type = "console"', EMAIL.replace("d@e.f", "desk")),
                     "notifiers.hook.to[0]", "not an email address", id="email-to"),
        pytest.param(BASE.replace('type = "console"', EMAIL.replace('"d@e.f"', '"g@h.i", "x@"')),
                     "notifiers.hook.to[1]", "not an email address", id="email-second-to"),
        pytest.param(BASE.replace('type = "console"', EMAIL.replace("d@e.f", "d@e.f, x@y.z")),
                     "notifiers.hook.to[0]", "one email address", id="email-two-in-one"),
        pytest.param(BASE.replace('type = "console"', EMAIL.replace("a@b.c", "not an address")),
                     "notifiers.hook.from", "not an email address", id="email-from"),
        pytest.param(BASE.replace('russia = ["Russia", "Russian"]',
                                  'russia = ["Russia"]\n"c\u00f4te" = ["C\u00f4te"]'),
                     "entities.c\u00f4te", "an entity's name is letters", id="entity-name"),
        pytest.param(BASE.replace('type = "console"', EMAIL + "port = 70000"),
                     "notifiers.hook.port", "at most 65535", id="email-port"),
        pytest.param(BASE.replace('type = "console"', EMAIL + 'password = "pw"'),
                     "notifiers.hook.username", "required with a password", id="email-no-user"),
        pytest.param(BASE + "\n[monitor]\nper_host = 1.5\n", "monitor.per_host",
                     "expected a whole number, got 1.5", id="fraction-for-whole"),
        pytest.param(BASE + "\n[monitor]\nper_host = true\n", "monitor.per_host",
                     "expected a whole number, got true", id="boolean-for-whole"),
        pytest.param(BASE + "\n[monitor]\ninterval = '\uff11\uff10m'\n", "monitor.interval",
                     "expected a duration", id="full-width-digits"),
        pytest.param(BASE + "\n[monitor]\nmax_interval = '100000000d'\n",
                     "monitor.max_interval", "at most 36500d", id="past-the-calendar"),
    ],
)  # fmt: skip
def test_bad_watchlist_names_the_key(tmp_path: Path, edit: str, path: str, message: str) -> None:
    """Every mistake is a ConfigError naming where it is and what is wrong."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, edit)
    assert caught.value.path == path
    assert message in caught.value.message


def test_one_feed_under_other_credentials_is_another_feed(tmp_path: Path) -> None:
    """A private feed read as two users is two feeds; as one user twice, it is refused
    without printing the password."""
    two = BASE + '[[feeds]]\nurl = "https://ann:s3cret@example.org/feed.xml"\n'
    config = load(tmp_path, two + '[[feeds]]\nurl = "https://bob:s3cret@example.org/feed.xml"\n')
    assert len(config.feeds) == 3  # type: ignore[attr-defined]
    again = two + '[[feeds]]\nurl = "https://ann:s3cret@EXAMPLE.org/feed.xml"\n'
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, again)
    assert caught.value.path == "feeds[2].url"
    assert caught.value.message == (
        "the same feed as feeds[1]: https://ann:***@EXAMPLE.org/feed.xml"
    )
    as_users = '[[feeds]]\nurl = "https://example.org/p.xml"\nusername = "{}"\npassword = "pw"\n'
    users = load(tmp_path, BASE + as_users.format("ann") + as_users.format("bob"))
    assert len(users.feeds) == 3  # type: ignore[attr-defined]
    # the user in the URL or in username: one reader
    same_user = BASE + as_users.format("ann") + '[[feeds]]\nurl = "https://ann@example.org/p.xml"\n'
    with pytest.raises(ConfigError, match="the same feed as feeds"):
        load(tmp_path, same_user)
    # hosts of dots are no spelling of one another; a query chooses a feed
    odd = BASE + '[[feeds]]\nurl = "http://./a"\n[[feeds]]\nurl = "http://../b"\n'
    assert len(load(tmp_path, odd).feeds) == 3  # type: ignore[attr-defined]
    editions = '[[feeds]]\nurl = "https://example.org/rss?ocid={}"\n'
    asked = BASE + editions.format("world") + editions.format("sports")
    assert len(load(tmp_path, asked).feeds) == 3  # type: ignore[attr-defined]


def test_email_addresses_as_people_write_them(tmp_path: Path) -> None:
    """Display names and quoted local parts are addresses too."""
    text = EMAIL.replace('"a@b.c"', '"News Desk <news@example.org>"')
    text = text.replace('["d@e.f"]', '["\\"desk\\"@example.org", "Ann <ann@[127.0.0.1]>"]')
    config = load(tmp_path, BASE.replace('type = "console"', text))
    assert config.notifiers["hook"].to == (  # type: ignore[attr-defined]
        '"desk"@example.org',
        "Ann <ann@[127.0.0.1]>",
    )


def test_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret can come from an environment variable or a file (trailing newline dropped)."""
    (tmp_path / "hmac").write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("HOOK_URL", "https://hooks.example.org/T0KEN")
    monkeypatch.setenv("CREDS", str(tmp_path))
    text = BASE.replace(
        'type = "console"',
        'type = "webhook"\nurl_env = "HOOK_URL"\nsecret_file = "${CREDS}/hmac"',
    )
    config = load(tmp_path, text)
    hook = config.notifiers["hook"]  # type: ignore[attr-defined]
    assert isinstance(hook, WebhookNotifierConfig)
    assert hook.url.reveal() == "https://hooks.example.org/T0KEN"
    assert hook.secret is not None
    assert hook.secret.reveal() == "from-file"
    assert "T0KEN" not in repr(config)


@pytest.mark.parametrize(
    ("notifier", "path", "message"),
    [
        ('url_env = "NOPE_UNSET"', "notifiers.hook.url_env", "NOPE_UNSET is not set"),
        ('url_file = "missing.txt"', "notifiers.hook.url_file", "cannot read"),
        ('url = "https://x/T0KEN"\nurl_env = "X"', "notifiers.hook.url", "only one"),
    ],
    ids=["env-unset", "file-missing", "two-sources"],
)
def test_unreadable_secret_names_the_key_not_the_value(
    tmp_path: Path, notifier: str, path: str, message: str
) -> None:
    """A secret that cannot be read is a config error naming the key, never the value."""
    text = BASE.replace('type = "console"', f'type = "webhook"\n{notifier}')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.path == path
    assert message in caught.value.message
    assert "T0KEN" not in str(caught.value)


def test_database_is_relative_to_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under systemd the database lives in $STATE_DIRECTORY, the watchlist elsewhere."""
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/newsmon")
    config = load(tmp_path, BASE)
    assert config.monitor.database == Path("/var/lib/newsmon/newsmon.db")  # type: ignore[attr-defined]


def test_rules_scope_by_feed_name_or_tag(tmp_path: Path) -> None:
    """A rule scoped to a tag watches the feeds with that tag only."""
    text = BASE.replace('notify = ["hook"]', 'notify = ["hook"]\nfeeds = ["world"]')
    text += '\n[[feeds]]\nurl = "https://example.org/other.xml"\n'
    config = load(tmp_path, text)
    assert config.scopes == {  # type: ignore[attr-defined]
        "https://example.org/feed.xml": frozenset({"r"}),
        "https://example.org/other.xml": frozenset(),
    }


def test_every_commented_example_is_valid_when_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uncommenting the example's optional keys and notifiers gives a valid watchlist, so
    what the example shows ready to enable really works."""
    import re

    setting = re.compile(r"^# (\[[\w.-]+\]|[a-z_]+ = .*)$")
    lines = [
        line[2:] if setting.match(line) else line
        for line in (ROOT / "config.example.toml").read_text(encoding="utf-8").splitlines()
    ]
    text = "\n".join(lines).replace(
        'notify = ["terminal"]', 'notify = ["terminal", "archive", "desk-slack", "desk-email"]'
    )
    credentials = {  # as systemd hands them over (LoadCredential=)
        "smtp_password": "password\n",
        "webhook_secret": "s\n",
        "slack_webhook": "https://hooks.slack.example/y\n",
    }
    for name, value in credentials.items():
        (tmp_path / name).write_text(value, encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("NEWSMON_HOOK_URL", "https://hooks.example.org/x")
    config = load(tmp_path, text)
    assert set(config.notifiers) == {"terminal", "archive", "desk-slack", "desk-email"}  # type: ignore[attr-defined]
    assert config.monitor.metrics == ("127.0.0.1", 9464)  # type: ignore[attr-defined]
