"""Boilerplate removal: promotions, contact lines, pointers and share bars go; story stays."""

from __future__ import annotations

import pytest

from monitor.clean import clean_body
from monitor.plaintext import without_headline

STORY = "The embassy in Ankara reopened on Thursday, officials said."


@pytest.mark.parametrize(
    "line",
    [
        "Follow us on Twitter @gazette and on Facebook.",
        "Follow The New York Times Opinion section on Facebook, Twitter (@NYTopinion).",
        "Follow AP's full coverage of Brexit at https://www.apnews.com/Brexit",
        "Subscribe to our newsletter",
        "Sign up for our free daily newsletter delivered to your inbox.",
        "Get the latest updates right in your inbox. Subscribe to NJ.com’s newsletters.",
        "Pick Six Newsletter",
        "Have a tip? Amy Kuperinsky may be reached at amy@example.com. Follow her @AmyKup.",
        "Email Tariq Malik at tmalik@example.com or follow him @tariqjmalik.",
        "Reach the reporters on Twitter at http://twitter.com/MegKinnardAP",
        "paul.takahashi@example.com",
        "twitter.com/paultakahashi",
        "Read more: Alibaba poised to launch record-breaking Hong Kong listing",
        "READ MORE: China plague outbreak confirmed",
        "[Related: Salesforce keynote: AI, integration and protesters]",
        "Related: The 15 weirdest galaxies in our universe",
        "More:",
        "Also on rt.com Journalists threatened with sedition arrests",
        "You may also like...",
        "DON'T MISS",
        "Most read in world news",
        "Like this story? Share it with a friend!",
        "Share this article",
        " comments",
        "Filed under: Politics |",
        "Reporting by Rodrigo Campos; Editing by Nick Zieminski",
        "(Reporting by Will Dunham; Editing by Tom Brown)",
        "Fox News’ Jessica Napoli contributed to this report.",
    ],
)
def test_boilerplate_line_is_removed(line: str) -> None:
    """Each kind of trailing promotion, contact line, pointer or share bar is dropped whole."""
    assert clean_body(f"{STORY}\n{line}\n{STORY}") == f"{STORY}\n{STORY}"


@pytest.mark.parametrize(
    "line",
    [
        "More than 20 people were killed in the attack, police said.",
        "Follow-up talks are planned for March, the ministry said on Twitter.",
        "The president said on Twitter that he would sign the bill.",
        "Related developments in Syria worried the markets.",
        "Reading more into the figures, analysts saw a slowdown.",
        "More than 2 million people subscribe to the newsletter, the company said.",
        "@realDonaldTrump wrote that the deal was done.",
        "The hackers sent messages from admin@bank.example, police said.",
        "Share prices fell 3% on Facebook's results.",
        "Comments by the minister angered the opposition.",
        "Reporters Without Borders condemned the arrest.",
        "Source: a senior official, speaking on condition of anonymity, confirmed the visit. "
        + "He said the talks would resume.",
    ],
)
def test_story_line_is_kept(line: str) -> None:
    """Story sentences that merely mention networks, newsletters or 'more' stay."""
    assert clean_body(f"{STORY}\n{line}") == f"{STORY}\n{line}"


def test_long_paragraph_is_never_touched() -> None:
    """A paragraph longer than a promotion stays, even if it ends with one."""
    paragraph = STORY * 6 + " Follow us on Twitter @gazette."
    assert clean_body(paragraph) == paragraph


def test_related_links_go_with_their_heading() -> None:
    """The list of links under a 'Related:' line is part of it; later list items stay."""
    text = f"{STORY}\nRelated: Moon rush\n- Lander plans\n- Where landers land\n{STORY}\n- a"
    assert clean_body(text) == f"{STORY}\n{STORY}\n- a"


def test_click_to_tweet_suffix_is_cut_not_the_sentence() -> None:
    """A share button glued to a quote goes; the quote stays."""
    quote = "Laws of physics apply online."
    assert clean_body(quote + "Click To Tweet") == quote


HEADLINE = "Russia reopens embassy in Ankara"


@pytest.mark.parametrize(
    ("title", "first_line", "dropped"),
    [
        (HEADLINE, HEADLINE, True),
        (HEADLINE, "RUSSIA REOPENS EMBASSY IN ANKARA.", True),  # case and punctuation aside
        ("Russia’s envoy returns", "Russia's envoy returns", True),
        (f"{HEADLINE} | The Gazette", HEADLINE, True),  # the page title's site name
        (f"{HEADLINE} - gazette.com", HEADLINE, True),
        (HEADLINE, "Russia reopens embassy", False),  # a first paragraph, not the headline
        (HEADLINE, f"{HEADLINE}, officials said on Thursday.", False),
        ("Review", "Review", True),
        (None, HEADLINE, False),
        ("", "", False),
    ],
)
def test_a_first_line_repeating_the_title_goes(
    title: str | None, first_line: str, dropped: bool
) -> None:
    """Pages often start their text with the headline, which the title already holds:
    counted twice, it made ATLEAST/2 fire on one mention."""
    body = f"{first_line}\n{STORY}"
    assert without_headline(body, None, title) == (STORY if dropped else body)


LEDE = "The foreign ministry said on Monday that the envoy has a week to leave."


TITLE_SENTENCES = {  # id: (title, text, what is left of it; None: all of it)
    "plain": ("Russia expels envoy", f"Russia expels envoy. {LEDE}", LEDE),
    "case-and-stop": ("Russia expels envoy", f"RUSSIA EXPELS ENVOY! {LEDE}", LEDE),
    "apostrophes": ("Russia’s envoy leaves", f"Russia's envoy leaves. {LEDE}", LEDE),
    "quoted": ('"We will respond," Moscow says', f'"We will respond," Moscow says. {LEDE}', LEDE),
    "question": ("Will Moscow respond?", f"Will Moscow respond? {LEDE}", LEDE),
    "abbreviation": ("U.S. expels Russian envoy", f"U.S. expels Russian envoy. {LEDE}", LEDE),
    "site-name": ("Russia expels envoy | The Gazette", f"Russia expels envoy. {LEDE}", LEDE),
    "more-lines": (
        "Russia expels envoy",
        f"Russia expels envoy. {LEDE}\n{STORY}",
        f"{LEDE}\n{STORY}",
    ),
    "said-twice": (
        "Russia expels envoy",
        f"Russia expels envoy. Russia expels envoy. {LEDE}",
        f"Russia expels envoy. {LEDE}",
    ),
    # the title's words, going on in the same sentence: no repeat of the title
    "goes-on": ("Russia expels envoy", "Russia expels envoy over spy row, ministry says.", None),
    "comma": ("Russia expels envoy", "Russia expels envoy, officials said. More.", None),
    "possessive": ("Russia expels envoy", "Russia expels envoy's aide. More.", None),
    "aside": ("Russia expels envoy", f"Russia expels envoy (updated). {LEDE}", None),
    "no-space": ("Russia expels envoy", "Russia expels envoy.More.", None),
    "not-first": ("Russia expels envoy", f"Officials said Russia expels envoy. {LEDE}", None),
    "second-sentence": ("Russia expels envoy", f"{STORY} Russia expels envoy. {LEDE}", None),
    # a title ending where an abbreviation's or an acronym's period does: no sentence end
    "acronym-goes-on": ("China warns U.S.", "China warns U.S. over arms sales. More.", None),
    "abbreviation-goes-on": ("Storm hits St.", "Storm hits St. Louis. More.", None),
    "initial-goes-on": ("Ask John F.", "Ask John F. Kennedy. More.", None),
    "number-ends": ("Nato invokes Article 5", f"Nato invokes Article 5. {LEDE}", LEDE),
}


@pytest.mark.parametrize(("title", "text", "left"), TITLE_SENTENCES.values(), ids=TITLE_SENTENCES)
def test_a_first_sentence_repeating_the_title_goes(title: str, text: str, left: str | None) -> None:
    """A summary or body that opens with the title as a sentence of its own ("Russia
    expels envoy. The ministry said...") loses that sentence and nothing else; one whose
    first sentence only begins with the title's words keeps them (``left`` None: all kept)."""
    assert without_headline(text, title) == (text if left is None else left)
