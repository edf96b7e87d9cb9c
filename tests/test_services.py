"""Service detection from API URLs: the built-in table, overrides, and properties of the matcher."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalekit_auth.services import BUILTIN, parse_pattern, service_for_url


def example_url(pattern: str) -> str:
    host, _, path = pattern.partition("/")
    host = host.replace("*", "acme")
    return f"https://{host}/{path}/v1/items" if path else f"https://{host}/v1/items"


@pytest.mark.parametrize(("pattern", "service"), BUILTIN)
def test_every_table_entry_is_detected(pattern, service):
    assert service_for_url(example_url(pattern)) == service


def test_the_table_covers_the_well_known_services():
    services = {s for _, s in BUILTIN}
    assert len(services) >= 20
    for name in (
        "gmail", "google-calendar", "google-drive", "google-sheets", "google-docs", "slack", "notion", "linear",
        "github", "gitlab", "salesforce", "hubspot", "zendesk", "jira", "confluence", "asana", "dropbox",
        "outlook", "microsoft-teams", "zoom", "airtable", "intercom",
    ):  # fmt: skip
        assert name in services


@pytest.mark.parametrize(
    ("url", "service"),
    [
        ("https://gmail.googleapis.com/gmail/v1/users/me/messages?q=is:unread", "gmail"),
        ("https://www.googleapis.com/calendar/v3/calendars/primary/events", "google-calendar"),
        ("https://www.googleapis.com/drive/v3/files", "google-drive"),
        ("https://www.googleapis.com/oauth2/v2/userinfo", None),
        ("https://acme.atlassian.net/rest/api/3/issue/PROJ-1", "jira"),
        ("https://acme.atlassian.net/wiki/rest/api/content", "confluence"),
        ("https://acme.my.salesforce.com/services/data/v60.0/sobjects", "salesforce"),
        ("https://graph.microsoft.com/v1.0/me/messages", "outlook"),
        ("https://graph.microsoft.com/v1.0/me/drive/root/children", "onedrive"),
        ("https://graph.microsoft.com/v1.0/teams/123/channels", "microsoft-teams"),
        ("https://graph.microsoft.com/v1.0/users", "microsoft"),
        ("https://slack.com/api/chat.postMessage", "slack"),
        ("https://acme.zendesk.com/api/v2/tickets.json", "zendesk"),
        ("api.github.com/user", "github"),
    ],
)
def test_known_urls(url, service):
    assert service_for_url(url) == service


@pytest.mark.parametrize(
    "url",
    [
        "https://slack.com/apix/chat",  # paths match whole segments
        "https://slack.com/",
        "https://atlassian.net/rest/api/3",  # '*.atlassian.net' needs a subdomain
        "https://evil-api.github.com.example.org/user",
        "https://example.com/",
        "not a url at all",
        "",
        "https://[::1",
    ],
)
def test_unknown_urls(url):
    assert service_for_url(url) is None


def test_host_case_port_query_and_fragment_do_not_matter():
    for url in (
        "https://API.GitHub.com/user",
        "https://api.github.com:443/user",
        "https://api.github.com/user?x=1#frag",
    ):
        assert service_for_url(url) == "github"


def test_urls_no_token_may_go_to_belong_to_no_service():
    """The URL rule (tests/test_url_rule.py): userinfo, a trailing dot, plain http to a public host."""
    for url in ("https://user:pw@api.github.com/user", "https://api.github.com./user", "http://api.github.com/user"):
        assert service_for_url(url) is None


def test_overrides_beat_the_built_in_table():
    overrides = {"work-mail": ["gmail.googleapis.com"], "crm": ["crm.example.com/api", "localhost:8080"]}
    assert service_for_url("https://gmail.googleapis.com/gmail/v1/x", overrides) == "work-mail"
    assert service_for_url("https://crm.example.com/api/deals", overrides) == "crm"
    assert service_for_url("https://crm.example.com/other", overrides) is None
    assert service_for_url("http://localhost:8080/v1", overrides) == "crm"
    assert service_for_url("http://localhost:9090/v1", overrides) is None
    assert service_for_url("https://api.github.com/user", overrides) == "github"


def test_the_longest_override_wins():
    overrides = {"a": ["example.com"], "b": ["example.com/v2"], "c": ["*.example.com"]}
    assert service_for_url("https://example.com/v2/x", overrides) == "b"
    assert service_for_url("https://example.com/v1/x", overrides) == "a"
    assert service_for_url("https://api.example.com/v2/x", overrides) == "c"


@pytest.mark.parametrize("bad", ["", "*", "*example.com", "exa mple.com", "example.com:99999", "example.com:x"])
def test_bad_patterns_are_refused(bad):
    with pytest.raises(ValueError):
        parse_pattern(bad, "x")


# -- properties -------------------------------------------------------------------------

labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)
segments = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._~-", min_size=1, max_size=8), max_size=4)
_host_counts = Counter(p.split("/", 1)[0] for p, _ in BUILTIN)
unique_host_entries = [(p, s) for p, s in BUILTIN if _host_counts[p.split("/", 1)[0]] == 1]


@given(host=st.lists(labels, min_size=1, max_size=3), path=segments)
def test_hosts_outside_the_table_are_never_matched(host, path):
    url = "https://" + ".".join(host) + ".invalid/" + "/".join(path)
    assert service_for_url(url) is None


@given(entry=st.sampled_from(unique_host_entries), path=segments)
def test_any_path_under_a_pattern_keeps_its_service(entry, path):
    pattern, service = entry
    host, _, prefix = pattern.partition("/")
    url = f"https://{host.replace('*', 'tenant')}/{prefix}/{'/'.join(path)}".replace("//", "/").replace(":/", "://")
    assert service_for_url(url) == service


#: Query text the URL rule lets through: no spaces, control or formatting characters, no backslash.
query_text = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp"), exclude_characters="\\"),
    max_size=10,
)


@given(entry=st.sampled_from(BUILTIN), port=st.integers(1, 65535), query=query_text)
def test_case_port_and_query_never_change_the_answer(entry, port, query):
    url = example_url(entry[0])
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    variant = f"{scheme}://{host.upper()}:{port}/{path}?{query}"
    assert service_for_url(variant) == service_for_url(url)


@given(entry=st.sampled_from(BUILTIN), name=labels)
def test_an_exact_override_always_wins(entry, name):
    pattern, _ = entry
    url = example_url(pattern)
    assert service_for_url(url, {name: [pattern.replace("*", "acme")]}) == name
