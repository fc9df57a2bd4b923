"""Text -> fields: the built-in parsers and the user's regex.

Each parser is ``parse(text) -> dict | None``; None means "did not match", and the event
builder then ships the line as ``{"message": ...}`` and counts it. The user's regex runs under
a time limit (`agent.parse.userregex`): past it, its parse raises `PatternTimeout`, and the
builder dead-letters the line. A built-in parser leaves the time as written under ``time``;
the event builder reads it with the ``auto`` format (which knows every built-in's way of
writing time) and replaces it by the normalized time field.

Field names follow what nginx and Apache call them (``remote_addr``, ``body_bytes``) and RFC
3164/5424 (``host``, ``app``, ``procid``); a ``-`` in an access log means "absent", so the key
is left out, as Vector does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from operator import methodcaller
from typing import Any, Final

import orjson

from agent.parse.settings import ParserOptions
from agent.parse.userregex import (
    BLOCK_TIMEOUT,
    UserPattern,
    compile_user,
    present_groups,
    search_within,
)

_sre_parser: Any = getattr(re, "_parser")  # noqa: B009 - the pattern's parse tree

Fields = dict[str, Any]
ParseFunction = Callable[[str], Fields | None]

TIME_KEY: Final = "time"
"""Where the built-in parsers put the event time, as written in the line."""

_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'
"""A double-quoted string's inside: the loop unrolled (runs of plain characters between
escapes), the same strings as ``(?:[^"\\]|\\.)*`` at a fraction of the steps."""
_ACCESS = re.compile(
    r"(?P<remote_addr>\S+) (?P<ident>\S+) (?P<remote_user>\S+) \[(?P<time>[^\]]+)\] "
    rf'"(?P<request>{_QUOTED})" (?P<status>\d{{3}}|-) (?P<body_bytes>\d+|-)'
    rf'(?: "(?P<referer>{_QUOTED})" "(?P<user_agent>{_QUOTED})")?(?P<extra>.*)$'
)


def _in_line(pattern: str) -> str:
    """`pattern` (a built-in's, where every ``[^`` starts a negated class) with no negated
    class taking a newline: the same matches on a line (which holds none), and over a block
    no match that runs into the next lines. The line's own pattern there scanned from each
    line without its closing ``]`` or quote to the end of the slice, and failed: 16 KiB of
    ``a b c [`` lines cost ~200 ms instead of ~1 (tests/unit/test_attack_blocks.py)."""
    return pattern.replace("[^", "[^\n")


_ACCESS_LINES = re.compile("^" + _in_line(_ACCESS.pattern), re.M)
_REQUEST = re.compile(
    r"(?P<method>[A-Z][A-Za-z_-]*) (?P<path>\S+)(?: (?P<protocol>[A-Z]+/[\d.]+))?$"
)
_NGINX_ERROR = re.compile(
    r"(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?P<level>\w+)\] "
    r"(?P<pid>\d+)#(?P<tid>\d+): (?:\*(?P<connection>\d+) )?(?P<message>.*)$"
)
_NGINX_ERROR_CONTEXT = re.compile(
    rf', (client|server|request|upstream|host|referrer): ("{_QUOTED}"|[^,]*)'
)
_APACHE_ERROR = re.compile(
    r"\[(?P<time>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d{2}:\d{2}:\d{2}(?:\.\d+)? \d{4})\] "
    r"\[(?:(?P<module>[^:\]]*):)?(?P<level>[^\]]+)\]"
    r"(?: \[pid (?P<pid>\d+)(?::tid (?P<tid>\d+))?\])?"
    r"(?: \[client (?P<client>[^\]]+)\])? ?(?P<message>.*)$"
)
_SYSLOG_3164 = re.compile(
    r"(?:<(?P<pri>\d{1,3})>)?"
    r"(?P<time>[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}(?:\.\d+)?|\d{4}-\d{2}-\d{2}T\S+) +"
    r"(?P<rest>.*)$"
)
_TAG = re.compile(r"(?P<app>[^\s\[\]:]+)(?:\[(?P<pid>[^\]\s]+)\])?: ?(?P<message>.*)$")
_SYSLOG_5424 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) "
    r"(?P<procid>\S+) (?P<msgid>\S+) "
    rf'(?P<sd>-|(?:\[[^\]"\\]*(?:(?:\\.|"{_QUOTED}")[^\]"\\]*)*\])+)(?: (?P<message>.*))?$'
)
"""The structured data's elements as `_QUOTED` is written: runs of plain characters between
escapes and quoted values (the same strings as one alternation per character, fewer steps)."""
_5424_HEAD = re.compile(r"<\d{1,3}>\d{1,2} ")
"""How every RFC 5424 line starts: a block where no line does is RFC 3164 or nothing (a
search from a newline, a literal, skips through the block; `^` under ``re.M`` is tried at
every character)."""
_5424_NEXT_HEAD = re.compile("\n" + _5424_HEAD.pattern)
_5424_HEADS: Final = ("time", "host", "app", "procid", "msgid")
"""The header fields between the version and the structured data, in `_SYSLOG_5424`'s order."""
_SYSLOG_3164_LINES = re.compile("^" + _SYSLOG_3164.pattern, re.M)
_SYSLOG_5424_LINES = re.compile("^" + _in_line(_SYSLOG_5424.pattern), re.M)
_SD_ELEMENT = re.compile(rf'\[([^\s\]=]+)((?:\s+[^\s=\]]+="{_QUOTED}")*)\s*\]')
_SD_PARAM = re.compile(rf'([^\s=\]]+)="({_QUOTED})"')
_SD_ESCAPE = re.compile(r'\\(["\\\]])')
_LOGFMT = re.compile(rf'([^\s=]+)(?:=("{_QUOTED}"|\S*))?')
_QUOTED_IN_LINE = _QUOTED.replace("^", "^\n")
_LOGFMT_LINES = re.compile(rf'([^\s=]+)(=(?:"{_QUOTED_IN_LINE}"|\S*))?|(\n)')
"""`_LOGFMT` over a block: a quoted value stops at the line's end (no line holds a newline,
so it is the same match within a line), the ``=`` kept (a bare key has none), and each
newline a match of its own."""
_LOOKAROUND = ("(?=", "(?!", "(?<", "\\A", "\\Z")
"""What makes a pattern see past a line's ends (lookarounds, the string's own start and
end): a user regex holding any of these text has no whole-block form."""
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
_NEWLINE: Final = 10
_ANCHORS: Final = frozenset({"AT", "ASSERT", "ASSERT_NOT"})
_REPEATS: Final = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})
_NEWLINE_CATEGORIES: Final = frozenset(
    {"CATEGORY_SPACE", "CATEGORY_NOT_DIGIT", "CATEGORY_NOT_WORD", "CATEGORY_NOT_LINEBREAK"}
)


@dataclass(frozen=True, slots=True)
class Parser:
    """A named parse function and the field it leaves the event's time in (if any)."""

    name: str
    parse: ParseFunction
    time_key: str | None


def build_parser(options: ParserOptions) -> Parser:
    """The parser a source's ``parser`` option names, compiled once."""
    if options.type == "regex":
        assert options.pattern is not None  # guaranteed by ParserOptions
        pattern = compile_user(options.pattern)
        time_key = TIME_KEY if TIME_KEY in pattern.groupindex else None
        return Parser("regex", regex_parser(pattern), time_key)
    builtins: dict[str, tuple[ParseFunction, str | None]] = {
        "nginx": (parse_nginx, TIME_KEY),
        "apache": (parse_apache, TIME_KEY),
        "syslog": (parse_syslog, TIME_KEY),
        "logfmt": (parse_logfmt, None),
        "json": (parse_json, None),
    }
    function, time_key = builtins[options.type]
    return Parser(options.type, function, time_key)


def regex_parser(pattern: UserPattern) -> ParseFunction:
    """Named groups become fields; groups that did not take part are left out. A search that
    does not finish within `LINE_TIMEOUT` raises `PatternTimeout` (the line is
    dead-lettered, not shipped unparsed: it may well be one the pattern means)."""

    present = present_groups(pattern)

    def parse(text: str) -> Fields | None:
        match = search_within(pattern, text)
        if match is None:
            return None
        return present(match)

    return parse


BlockParse = Callable[[str, int], list[Fields] | None]
"""``(text, lines) -> fields of each line``: the parse function of every line of `text`
(`lines` lines, each ending in a newline) with one scan of a pattern over the whole text; None
unless every line matches (then the caller goes line by line)."""


def block_parser(options: ParserOptions) -> BlockParse | None:
    """The whole-block form of a parser, None for those without one (json)."""
    if options.type == "regex":
        assert options.pattern is not None  # guaranteed by ParserOptions
        return regex_block(options.pattern)
    forms: dict[str, BlockParse] = {
        "nginx": access_block,
        "apache": access_block,
        "syslog": syslog_block,
        "logfmt": logfmt_block,
    }
    return forms.get(options.type)


def regex_block(pattern: str) -> BlockParse | None:
    """`regex_parser`'s ``pattern.search`` on every line, as one scan over the block.

    ``^[^\\n]*?(?:pattern)`` under ``re.M`` tries each start in a line from its first
    character on, and the pattern's alternatives in their order, as ``search`` does on the
    line alone; it cannot start a match in one line and find it in the next. The pattern
    itself can reach past the line's end (``\\s`` takes a newline): a match holding one is
    refused (as are a line without a match and a line with two, the first empty), and one
    that does not behaves as on the line alone (``$``, ``^`` and ``\\b``
    see a newline where the line alone has its end). Only lookarounds, ``\\A`` and ``\\Z``
    see what the line alone does not, and a pattern with any of them has no block form
    (None). So does one that does not compile so (global flags after the start).

    The scan of a slice runs under `BLOCK_TIMEOUT`: past it, None, and the slice goes line by
    line, where the line that takes too long is the one dead-lettered."""
    if any(token in pattern for token in _LOOKAROUND) or runs_past_lines(pattern):
        return None
    flags = _GLOBAL_FLAGS.match(pattern)
    head = "" if flags is None else flags.group()
    try:
        whole = compile_user(rf"{head}^[^\n]*?(?:{pattern[len(head) :]})", multiline=True)
    except ValueError:  # UnsupportedPattern
        return None
    present = present_groups(whole)

    def parse(text: str, lines: int) -> list[Fields] | None:
        try:  # not the empty line after the last newline
            found = list(whole.finditer(text, 0, len(text) - 1, timeout=BLOCK_TIMEOUT))
        except TimeoutError:
            return None  # line by line, each line under its own bound
        if len(found) != lines or len(set(map(_START, found))) != lines:
            return None  # a line without a match, or with two (an empty one, then another)
        if "\n" in "".join(map(_GROUP, found)):
            return None  # a match that runs into the next line
        return list(map(present, found))

    return parse


def runs_past_lines(pattern: str) -> bool:
    """Whether a piece of `pattern` can take a newline and run on through what follows
    (``[^,]``, ``.`` under DOTALL, ``\\D``, ``[\\s\\S]``): one scan of such a pattern over a
    block goes from each place in a line to the end of the slice before it fails, quadratic
    in the slice where the line alone is not (``(?P<a>[^,]*),`` over 16 KiB of lines without
    a comma: ~1.5 s, line by line ~0.1 ms), so it has no whole-block form. Whitespace
    (``\\s``, ``\\n``) stops at the next line's first other character and is allowed; so is
    anything when the pattern does not parse here (True: no block form)."""
    try:
        tree = _sre_parser.parse(pattern)
    except Exception:
        return True
    return _runs_on(tree, bool(tree.state.flags & re.DOTALL))


def _runs_on(items: Any, dotall: bool) -> bool:
    for op, value in items:
        name = str(op)
        if name == "LITERAL" or name in _ANCHORS:
            continue
        if name == "NOT_LITERAL":
            if value != _NEWLINE:
                return True
        elif name == "ANY":
            if dotall:
                return True
        elif name == "IN":
            if _set_runs_on(value):
                return True
        elif name in _REPEATS:
            if _runs_on(value[2], dotall):
                return True
        elif name == "SUBPATTERN":
            _, on, off, inner = value
            if _runs_on(inner, (dotall or bool(on & re.DOTALL)) and not off & re.DOTALL):
                return True
        elif name == "BRANCH":
            if any(_runs_on(branch, dotall) for branch in value[1]):
                return True
        elif name == "ATOMIC_GROUP":
            if _runs_on(value, dotall):
                return True
        else:  # a back reference, a conditional group, what this does not know: refused
            return True
    return False


def _set_runs_on(items: list[tuple[Any, Any]]) -> bool:
    """A character set (``[...]``, ``\\d``) that takes a newline and some other character
    than whitespace."""
    negated = bool(items) and str(items[0][0]) == "NEGATE"
    members = items[1:] if negated else items
    newline = other = False
    for op, value in members:
        name = str(op)
        if name.startswith("LITERAL"):
            newline |= value == _NEWLINE
            other |= not chr(value).isspace()
        elif name.startswith("RANGE"):
            newline |= value[0] <= _NEWLINE <= value[1]
            other = True
        elif name == "CATEGORY":
            category = str(value)
            newline |= category in _NEWLINE_CATEGORIES
            other |= category != "CATEGORY_SPACE"
        else:
            return True
    if negated:
        return not newline
    return newline and other


def logfmt_block(text: str, lines: int) -> list[Fields] | None:
    """`parse_logfmt` of every line of `text` with one scan of `_LOGFMT_LINES`."""
    found: list[Fields] = []
    fields: Fields = {}
    pairs = 0
    for key, value, newline in _LOGFMT_LINES.findall(text):
        if newline:
            if not pairs:
                return None
            found.append(fields)
            fields, pairs = {}, 0
        elif not value:
            fields[key] = True
        else:
            pairs += 1
            fields[key] = _unquote(value[1:]) if value[1:2] == '"' else value[1:]
    return found if len(found) == lines else None


def parse_access(text: str) -> Fields | None:
    """The common and combined log formats, which nginx and Apache share by default.

    ``request`` is split into method, path and protocol when it has that shape (a scanner's
    garbage stays in ``request``); anything after the user agent (nginx's
    ``$http_x_forwarded_for``, timings) is kept whole in ``extra``.
    """
    match = _ACCESS.match(text)
    if match is None:
        return None
    return access_fields(match)


def access_block(text: str, lines: int) -> list[Fields] | None:
    """`parse_access` of every line of `text` (`lines` lines, each ending in a newline) with
    one scan of the pattern over the whole text; None unless every line matches (then the
    caller goes line by line: a line of nginx's error log, say).

    The pattern is the line's, anchored at each line (``re.M``), its classes never taking
    a newline (`_in_line`): each match within one line, what the line alone gives."""
    found = list(map(access_fields, _ACCESS_LINES.finditer(text)))
    return found if len(found) == lines else None


def access_fields(match: re.Match[str]) -> Fields:
    """The fields of one access-log line's match (see `parse_access`): its groups but
    ``ident``, each left out when ``-``; ``status`` and ``body_bytes`` as numbers (a missing
    size is 0, after the user agent); the request split into method, path and protocol
    after them when it has that shape (nginx writes ``-`` for one it could not read, a 400);
    what follows the user agent, stripped, last."""
    remote_addr, _, user, time, request, status, size, referer, agent, extra = match.groups()
    fields: Fields = {}
    if remote_addr != "-":
        fields["remote_addr"] = remote_addr
    if user != "-":
        fields["remote_user"] = user
    if time != "-":
        fields["time"] = time
    split = None
    if request != "-":
        split = _REQUEST.match(request)
        if split is None:
            fields["request"] = request
    if status != "-":
        fields["status"] = int(status)
    if size != "-":
        fields["body_bytes"] = int(size)
    if referer is not None and referer != "-":
        fields["referer"] = referer
    if agent is not None and agent != "-":
        fields["user_agent"] = agent
    if size == "-":
        fields["body_bytes"] = 0
    if split is not None:
        method, path, protocol = split.groups()
        fields["method"] = method
        fields["path"] = path
        if protocol is not None:
            fields["protocol"] = protocol
    if extra != "-" and (extra := extra.strip()):
        fields["extra"] = extra
    return fields


def parse_nginx_error(text: str) -> Fields | None:
    """``2015/01/21 10:56:10 [error] 2833#0: *16336 message, client: ..., server: ...``."""
    match = _NGINX_ERROR.match(text)
    if match is None:
        return None
    fields = _present(match)
    for key in ("pid", "tid", "connection"):
        if key in fields:
            fields[key] = int(fields[key])
    for key, value in _NGINX_ERROR_CONTEXT.findall(fields["message"]):
        fields.setdefault(key, _unquote(value) if value.startswith('"') else value)
    return fields


def parse_apache_error(text: str) -> Fields | None:
    """``[Sun Jun 09 07:57:47 2013] [error] [client 192.0.43.10] message`` (2.2), and 2.4's
    ``[Mon Dec 23 07:49:01.981912 2013] [core:error] [pid 3790:tid 14] [client ...] msg``."""
    match = _APACHE_ERROR.match(text)
    if match is None:
        return None
    fields = _present(match)
    for key in ("pid", "tid"):
        if key in fields:
            fields[key] = int(fields[key])
    if not fields.get("module"):
        fields.pop("module", None)
    return fields


def parse_nginx(text: str) -> Fields | None:
    """nginx's access log (combined or common), or its error log."""
    fields = parse_access(text)
    return parse_nginx_error(text) if fields is None else fields


def parse_apache(text: str) -> Fields | None:
    """Apache's access log (combined or common), or its error log (2.2 and 2.4)."""
    fields = parse_access(text)
    return parse_apache_error(text) if fields is None else fields


def parse_syslog(text: str) -> Fields | None:
    """RFC 5424 when the line starts ``<PRI>VERSION``, else RFC 3164 (BSD syslog)."""
    if text.startswith("<") and (fields := parse_syslog_5424(text)) is not None:
        return fields
    return parse_syslog_3164(text)


def parse_syslog_3164(text: str) -> Fields | None:
    """``<PRI>Mmm dd hh:mm:ss host app[pid]: message``; ``<PRI>`` and the host are optional,
    and rsyslog's ISO 8601 timestamp (``2015-04-16T18:02:50.321974+00:00``) is accepted."""
    match = _SYSLOG_3164.match(text)
    if match is None:
        return None
    return syslog_3164_fields(match)


def syslog_block(text: str, lines: int) -> list[Fields] | None:
    """`parse_syslog` of every line of `text` (`lines` lines, each ending in a newline) with
    one scan over the whole text: all RFC 5424, or all RFC 3164 with no line RFC 5424 would
    take first; None otherwise (the caller goes line by line). No match runs into the next
    line (`_in_line`, and RFC 3164's pattern takes no newline)."""
    if _5424_HEAD.match(text) is not None or _5424_NEXT_HEAD.search(text) is not None:
        found = list(map(syslog_5424_fields, _SYSLOG_5424_LINES.finditer(text)))
        if len(found) == lines:
            return found
        if found:
            return None
    found = list(map(syslog_3164_fields, _SYSLOG_3164_LINES.finditer(text)))
    return found if len(found) == lines else None


def syslog_3164_fields(match: re.Match[str]) -> Fields:
    """The fields of one RFC 3164 line's match (see `parse_syslog_3164`)."""
    fields: Fields = {}
    _add_priority(fields, match.group("pri"))
    fields[TIME_KEY] = match.group("time")
    rest = match.group("rest")
    host, _, after = rest.partition(" ")
    if not (host.endswith(":") and _TAG.fullmatch(host)):  # else no host: it is `app[pid]:`
        fields["host"] = host
        rest = after
    tag = _TAG.match(rest)
    if tag is None:
        fields["message"] = rest
        return fields
    fields["app"] = tag.group("app")
    pid = tag.group("pid")
    if pid is not None:
        fields["pid"] = int(pid) if pid.isdigit() else pid
    fields["message"] = tag.group("message")
    return fields


def parse_syslog_5424(text: str) -> Fields | None:
    """``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD-ID k="v"...] MSG``; ``-`` fields left out;
    structured data becomes ``{"SD-ID": {"k": "v"}}`` under ``structured_data``."""
    match = _SYSLOG_5424.match(text)
    if match is None:
        return None
    return syslog_5424_fields(match)


def syslog_5424_fields(match: re.Match[str]) -> Fields:
    """The fields of one RFC 5424 line's match (see `parse_syslog_5424`)."""
    pri, version, time, host, app, procid, msgid, sd, message = match.groups()
    facility, severity = _priority(pri)
    fields: Fields = {
        "facility": facility,
        "severity": severity,
        "version": int(version),
        "time": time,
        "host": host,
        "app": app,
        "procid": procid,
        "msgid": msgid,
    }
    if "-" in (time, host, app, procid, msgid):
        for key in _5424_HEADS:
            if fields[key] == "-":
                del fields[key]
    if sd != "-":
        fields["structured_data"] = _structured_data(sd)
    if message:
        fields["message"] = message.removeprefix("\ufeff")
    return fields


def parse_logfmt(text: str) -> Fields | None:
    """``level=info msg="hello \\"you\\"" ok``: values stay strings, a bare key is ``true``.
    A line without a single ``key=value`` pair is not logfmt."""
    fields: Fields = {}
    pairs = 0
    for match in _LOGFMT.finditer(text):
        key, value = match.group(1), match.group(2)
        if value is None:
            fields[key] = True
            continue
        pairs += 1
        fields[key] = _unquote(value) if value.startswith('"') else value
    return fields if pairs else None


def parse_json(text: str) -> Fields | None:
    """A JSON object; anything else (arrays, scalars, invalid JSON) does not match."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is dict else None


_START: Final = methodcaller("start")
_GROUP: Final = methodcaller("group")


def _present(match: re.Match[str]) -> Fields:
    return {k: v for k, v in match.groupdict().items() if v is not None}


def _add_priority(fields: Fields, pri: str | None) -> None:
    if pri is not None:
        fields["facility"], fields["severity"] = _priority(pri)


@lru_cache(maxsize=256)
def _priority(pri: str) -> tuple[int, int]:
    """Facility and severity of a ``<PRI>``'s digits (a source writes a few distinct ones)."""
    value = int(pri)
    return value >> 3, value & 7


def _structured_data(text: str) -> dict[str, dict[str, str]]:
    """Parsed once per distinct text (a source repeats the same few) when short: the value
    is shared by the events that carry it, and nothing writes into it (the builder sets
    top-level keys). A longer one is parsed each time: 1024 distinct ~110 KB ones (crafted
    lines) kept ~840 MB alive in the cache."""
    if len(text) > _SD_CACHED_CHARS:
        return _parse_structured_data(text)
    return _cached_structured_data(text)


_SD_CACHED_CHARS: Final = 512
"""The longest structured data kept by `_cached_structured_data` (1024 of them: ~2 MB)."""


@lru_cache(maxsize=1024)
def _cached_structured_data(text: str) -> dict[str, dict[str, str]]:
    return _parse_structured_data(text)


def _parse_structured_data(text: str) -> dict[str, dict[str, str]]:
    elements: dict[str, dict[str, str]] = {}
    for sd_id, params in _SD_ELEMENT.findall(text):
        elements[sd_id] = {k: _SD_ESCAPE.sub(r"\1", v) for k, v in _SD_PARAM.findall(params)}
    return elements


def _unquote(quoted: str) -> str:
    """A double-quoted value: JSON string rules when it is one, else just ``\\x`` -> ``x``;
    without a backslash both are the text between the quotes (or JSON refuses a control
    character, and the other rule takes the same text)."""
    if "\\" not in quoted:
        return quoted[1:-1]
    try:
        value = orjson.loads(quoted)
    except orjson.JSONDecodeError:
        return re.sub(r"\\(.)", r"\1", quoted[1:-1])
    return value if isinstance(value, str) else quoted[1:-1]
