"""WebShop's pages as its text environment shows them (`observation_mode="text"`).

The original renders HTML templates (`web_agent_site/templates/*.html`) and joins the visible text
nodes with " [SEP] "; clickables are the lowercased texts of buttons and product links plus the
option values (`WebAgentTextEnv.get_available_actions`). The same strings are produced here
directly, without HTML. The done page shows the score only (the original also leaks hidden goal
details into the text, which no agent should see).
"""

from __future__ import annotations

from collections.abc import Sequence

from krill.envs.webshop.catalogue import Product

SEP = " [SEP] "
BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
END_BUTTON = "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")
PRODUCT_WINDOW = 10  # engine.py: results per page
SEARCH_TEMPLATE = "search[...]"  # the search box (verl-agent writes "search[<your query>]"; krill.agent.parsing expects "[...]")


def search_page(instruction: str) -> str:
    """The start page.

    >>> search_page("i need a red hat")
    'WebShop [SEP] Instruction: [SEP] i need a red hat [SEP] Search'
    """
    return SEP.join(["WebShop", "Instruction:", instruction, "Search"])


def results_page(instruction: str, page: int, total: int, products: Sequence[Product]) -> str:
    """One page (10 products) of search results; "< Prev" only after page 1, "Next >" always."""
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, f"Page {page} (Total results: {total})"]
    if page > 1:
        parts.append(PREV_PAGE)
    parts.append(NEXT_PAGE)
    for p in products:
        parts += [p.asin, p.title, p.price_text]
    return SEP.join(parts)


def results_clickables(page: int, products: Sequence[Product]) -> list[str]:
    out = [BACK_TO_SEARCH.lower()]
    if page > 1:
        out.append(PREV_PAGE.lower())
    out.append(NEXT_PAGE.lower())
    return out + [p.asin.lower() for p in products]


def item_page(instruction: str, product: Product) -> str:
    """The product page: option groups and values, title, price, sub-page buttons, Buy Now."""
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, PREV_PAGE]
    for name, values in product.options.items():
        parts += [name, *values]
    parts += [product.title, f"Price: {product.price_text}", "Rating: N.A.", *SUB_PAGES, END_BUTTON]
    return SEP.join(parts)


def item_clickables(product: Product) -> list[str]:
    buttons = [BACK_TO_SEARCH, PREV_PAGE, *SUB_PAGES, END_BUTTON]
    values = [v for vs in product.options.values() for v in vs]
    return [b.lower() for b in buttons] + list(dict.fromkeys(values))


def sub_page(instruction: str, product: Product, which: str) -> str:
    """Description, Features (bullet points) or Reviews (none in the generated catalogue, as in the
    original, whose review loading is commented out)."""
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, PREV_PAGE]
    if which == "Description":
        parts.append(product.description)
    elif which == "Features":
        parts += list(product.bullets)
    return SEP.join(parts)


def sub_clickables() -> list[str]:
    return [BACK_TO_SEARCH.lower(), PREV_PAGE.lower()]


def done_page(score: float) -> str:
    return SEP.join(["Thank you for shopping with us!", "Your score (min 0.0, max 1.0)", f"{score:.4g}"])


def page_window(products: Sequence[Product], page: int) -> Sequence[Product]:
    """engine.get_product_per_page: products of 1-based `page` (empty past the end, as there)."""
    return products[(page - 1) * PRODUCT_WINDOW : page * PRODUCT_WINDOW]
