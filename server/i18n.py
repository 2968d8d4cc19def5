"""The one translation catalogue: zh-CN by default, English on request (?lang=en or Accept-Language)."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("zh-CN", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    "app.name": {"zh-CN": "揽收", "en": "Lanshou"},
    "login.title": {"zh-CN": "登录", "en": "Sign in"},
    "login.username": {"zh-CN": "用户名", "en": "Username"},
    "login.password": {"zh-CN": "密码", "en": "Password"},
    "login.submit": {"zh-CN": "登录", "en": "Sign in"},
    "login.failed": {"zh-CN": "用户名或密码错误", "en": "Wrong username or password"},
    "login.missing": {"zh-CN": "请输入用户名和密码", "en": "Enter your username and password"},
    "login.signed_in_as": {"zh-CN": "已登录：", "en": "Signed in as "},
    "logout": {"zh-CN": "退出", "en": "Sign out"},
}


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    if query_lang:
        return "en" if query_lang.lower().startswith("en") else "zh-CN"
    if accept_language and accept_language.strip().lower().startswith("en"):
        return "en"
    return "zh-CN"


def translate(key: str, lang: str, **values: Any) -> str:
    entry = CATALOGUE.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["zh-CN"]
    return text.format(**values) if values else text
