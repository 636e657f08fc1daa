"""A faithful WebShop simulator: generated catalogue, BM25 search, WebShop's pages, reward and goals.

Importing this package registers the `webshop` env (`krill.envs.base.make_env("webshop", split)`).
"""

from krill.envs.webshop.env import WebshopEnv, admissible_actions, make_webshop_env, split_command
from krill.envs.webshop.pages import SEARCH_TEMPLATE

__all__ = ["SEARCH_TEMPLATE", "WebshopEnv", "admissible_actions", "make_webshop_env", "split_command"]
