"""nginx's secure_link module: $secure_link and $secure_link_expires
(ngx_http_secure_link_module.c).

New style (`secure_link $hash[,$expires]` with `secure_link_md5 expression`): the hash is the
base64url MD5 of the expression; $secure_link is "1", "0" when the link has expired, not found
when the hash is missing, malformed or wrong. Old style (`secure_link_secret word`): the request
URI is /prefix/<md5 hex of rest + word>/rest and $secure_link is that rest. A level with
secure_link or secure_link_md5 does not inherit secure_link_secret, nor the other way round.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time

from ngate.errors import ConfigError

_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
# the Level keys of LocConf.secure_link (config/model_modules.py SecureLinkConf)
VAR, MD5, SECRET = "secure_link.variable", "secure_link.md5", "secure_link.secret"


def _set(c, lv, st, key: str) -> None:
    if key in lv.vals and lv.vals[key] is not None:
        raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
    mixing = (VAR, MD5) if key == SECRET else (SECRET,)
    if any(lv.vals.get(k) is not None for k in mixing):
        raise ConfigError('"secure_link_secret" cannot be mixed with "secure_link" and '
                          '"secure_link_md5"', st.where)
    if key == SECRET:
        lv.vals[SECRET] = st.args[0]
        lv.vals[VAR] = lv.vals[MD5] = None
    else:
        lv.vals[key] = c.template(st.args[0], st.where)
        lv.vals.setdefault(SECRET, None)


def secure_link(c, lv, st) -> None:
    _set(c, lv, st, VAR)


def secure_link_md5(c, lv, st) -> None:
    _set(c, lv, st, MD5)


def secure_link_secret(c, lv, st) -> None:
    _set(c, lv, st, SECRET)


def _decode_base64url(text: bytes) -> bytes | None:
    """ngx_decode_base64url: characters up to the first "=", none outside the alphabet."""
    data = text.split(b"=", 1)[0]
    if not _B64URL.fullmatch(data) or len(data) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def secure_link_value(ctx) -> str | None:
    conf = ctx.conf
    if conf is None:
        return None
    if conf.secure_link.secret is not None:
        return _old_style(ctx, conf.secure_link.secret)
    if conf.secure_link.variable is None or conf.secure_link.md5 is None:
        return None
    value = conf.secure_link.variable.render(ctx)
    hash_text, comma, exp_text = value.partition(",")
    expires = 0
    if comma:
        expires = int(exp_text) if exp_text.isdigit() else -1
        if expires <= 0:
            return None
    if len(hash_text) > 24:
        return None
    digest = _decode_base64url(hash_text.encode("latin-1"))
    if digest is None or len(digest) != 16:
        return None
    expected = hashlib.md5(conf.secure_link.md5.render(ctx).encode("latin-1", "replace")).digest()
    if digest != expected:
        return None
    return "0" if expires and expires < time.time() else "1"


def secure_link_expires(ctx) -> str | None:
    conf = ctx.conf
    if conf is None or conf.secure_link.secret is not None or conf.secure_link.variable is None \
            or conf.secure_link.md5 is None:
        return None
    _, comma, exp_text = conf.secure_link.variable.render(ctx).partition(",")
    if not comma or not (exp_text.isdigit() and int(exp_text) > 0):
        return None
    return exp_text


def _old_style(ctx, secret: str) -> str | None:
    uri = ctx.request_uri
    first = uri.find("/", 1)
    if first < 0:
        return None
    second = uri.find("/", first + 1)
    if second < 0:
        return None
    md5_hex, rest = uri[first + 1:second], uri[second + 1:]
    if len(md5_hex) != 32 or not rest:
        return None
    digest = hashlib.md5((rest + secret).encode("latin-1", "replace")).hexdigest()
    return rest if md5_hex.lower() == digest else None


VARIABLES = {"secure_link": secure_link_value, "secure_link_expires": secure_link_expires}
