"""Recipe text -> Recipe, or RecipeErrors listing every mistake as file:line:col: message.

The parser works in two passes. The first cuts the text into statements (joining `\\`
continuations and heredoc bodies) and reads each one into a typed Step. The second walks the
steps in order and checks what only the whole file can tell: definitions before workflow
lines, names defined once, sessions opened before use, references that exist.

It never raises anything but RecipeErrors: a property test feeds it arbitrary text.
"""

from __future__ import annotations

import argparse
import bisect
import difflib
import re
from dataclasses import dataclass, replace

from trainsh.kinds import INLINE, SCHEMES, spec_problem
from trainsh.kinds.slurm import option_problem
from trainsh.kinds.ssh import valid_port
from trainsh.numbers import BID
from trainsh.recipe.expand import ExpandError, expand
from trainsh.recipe.model import (
    CLOUDS,
    CONTROL_CHARS,
    Cloud,
    Command,
    Definition,
    Duration,
    Endpoint,
    HostCommand,
    Notify,
    Pick,
    Pos,
    Recipe,
    RecipeError,
    RecipeErrors,
    Sleep,
    Slurm,
    Step,
    TmuxClose,
    TmuxConfig,
    TmuxOpen,
    Transfer,
    Wait,
    cloud_names,
)

NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
VAR_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME_RE = re.compile(NAME + r"\Z")
_VAR_NAME_RE = re.compile(VAR_NAME + r"\Z")
_DEFINITION = re.compile(r"(var|host|storage)\b\s*(.*)\Z", re.S)
# `train exec` lines may name a host by its spec where a name stands: `@colab:c1 > cmd`.
SPEC_ID = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
SPEC_REF_SCHEMES = INLINE  # `@vast:ID > cmd`: host kinds named inline
_COMMAND_HEAD = re.compile(r"@(" + NAME + r"(?::" + SPEC_ID + r")?)((?:[ \t]+[A-Za-z_][\w.]*=\S*)*)[ \t]*>(?!>)[ \t]?")
_HEREDOC = re.compile(r"<<(?!<)(-?)[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|\\?([A-Za-z0-9_.-]+))")

_CHAR_NAMES = {"\x00": "NUL byte", "\r": "carriage return", "\x0b": "vertical tab",
               "\x0c": "form feed", "\x1b": "escape character", "\x85": "next-line character",
               "\u2028": "line separator", "\u2029": "paragraph separator"}


def describe_char(c: str) -> str:
    name = _CHAR_NAMES.get(c, "control character")
    return f"{name} U+{ord(c):04X}"


def split_lines(text: str) -> list[str]:
    """The lines of a recipe as every editor shows them: split at `\n` and `\r\n` only
    (`str.splitlines` also splits at form feeds, U+2028 and more)."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


CONTROL = {
    "tmux.open", "tmux.close", "tmux.config", "pick",
    *(f"{c}.{a}" for c in CLOUDS for a in ("pick", "start", "stop", "wait", "cost")),
    "slurm.alloc", "slurm.wait", "slurm.release",
    "notify", "sleep",
}
KEYWORDS = sorted(CONTROL | {"var", "host", "storage", "wait"})

# Options each cloud action accepts, with a checker for the value.
def _count_opt(v: str) -> str | None:
    if not re.fullmatch(r"\d+", v, re.ASCII):
        return "a whole number"
    return None if int(v) else "a whole number of at least 1"  # (0 GPUs, 0 offers: nothing to pick)


def _recover_opt(v: str) -> str | None:
    return None if re.fullmatch(r"\d{1,2}", v, re.ASCII) else "a whole number of losses to survive, 0-99"


def _num_opt(v: str) -> str | None:
    return None if re.fullmatch(r"\d+(\.\d+)?|\.\d+", v, re.ASCII) else "a number"


def _bool_opt(v: str) -> str | None:
    return None if v.lower() in ("true", "false", "yes", "no", "1", "0") else "true or false"


def _dur_opt(v: str) -> str | None:
    try:
        Duration.parse(v)
        return None
    except ValueError as e:
        return str(e)


def _any_opt(v: str) -> str | None:
    return None if v else "a value"


def _bid_opt(v: str) -> str | None:
    try:
        BID(v)  # (numbers.py's one parser, as `--bid` on the command line)
    except argparse.ArgumentTypeError:
        return "a bid in USD/h, more than 0 and at most 128"
    return None


# a pick rents on a bid: `interruptible=` on Vast, `spot=` on RunPod (each cloud's own word)
SPOT_WORD = {"vast": "interruptible", "runpod": "spot"}

CLOUD_OPTIONS = {f"{c}.{action}": options for c in CLOUDS for action, options in {
    "pick": {"num_gpus": _count_opt, "min_gpu_ram": _num_opt, "gpu": _any_opt,
             "max_dph": _num_opt, "limit": _count_opt, "recover": _recover_opt},
    "wait": {"timeout": _dur_opt, "poll": _dur_opt, "stop_on_fail": _bool_opt},
    "start": {}, "stop": {}, "cost": {},
}.items()}
for _c, _word in SPOT_WORD.items():
    CLOUD_OPTIONS[f"{_c}.pick"] = {**CLOUD_OPTIONS[f"{_c}.pick"], _word: _bool_opt, "bid": _bid_opt}


def _clouds_opt(v: str) -> str | None:
    try:
        cloud_names(v)
        return None
    except ValueError as e:
        return str(e)


# `pick @host`: the clouds it compares, and what a machine must have (runtime/pick.py); its own
# table, as an option one cloud's pick gains does not mean the same on every cloud.
PICK_OPTIONS = {"clouds": _clouds_opt, "num_gpus": _count_opt, "min_gpu_ram": _num_opt,
                "gpu": _any_opt, "max_dph": _num_opt, "limit": _count_opt, "recover": _recover_opt}

STORAGE_SCHEMES = ("r2", "b2", "s3", "gdrive", "local")
HOST_SCHEMES = SCHEMES
SLURM_WAIT_OPTIONS = {"timeout": _dur_opt, "poll": _dur_opt, "keep": _bool_opt}


# ---- cutting text into statements --------------------------------------------------------

@dataclass
class _Text:
    """A statement's text with a map from offsets back to file positions."""

    text: str
    starts: list[int]  # offset in text where each physical line begins
    lines: list[int]  # its 1-based line number
    cols: list[int]  # the column of the text's first character on that line
    raw_first: str  # the first physical line, for carets

    def pos(self, offset: int) -> Pos:
        i = max(0, bisect.bisect_right(self.starts, offset) - 1)
        return Pos(self.lines[i], self.cols[i] + offset - self.starts[i])


class _Collector:
    def __init__(self, file: str, lines: list[str]):
        self.file = file
        self.lines = lines
        self.errors: list[RecipeError] = []

    def error(self, pos: Pos, message: str) -> None:
        src = self.lines[pos.line - 1] if 0 < pos.line <= len(self.lines) else ""
        self.errors.append(RecipeError(self.file, pos, message, src))


def _strip_comment_only(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


def _find_heredocs(text: str) -> list[tuple[int, str, bool]]:
    """(offset, delimiter, strip_tabs) of each heredoc operator outside quotes, in order."""
    found = []
    i, n = 0, len(text)
    quote = None
    arith = 0  # depth of `((`...`))`, where `<<` is a shift, not a heredoc
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c == "\\":
            i += 2
            continue
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|("):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        elif text.startswith("((", i):
            arith += 1
            i += 2
            continue
        elif arith and text.startswith("))", i):
            arith -= 1
            i += 2
            continue
        elif text.startswith("<<", i) and not arith:
            m = _HEREDOC.match(text, i)
            if m:
                delim = m.group(2) if m.group(2) is not None else (
                    m.group(3) if m.group(3) is not None else m.group(4))
                found.append((i, delim, m.group(1) == "-"))
                i = m.end()
                continue
            i += 3 if text.startswith("<<<", i) else 2
            continue
        i += 1
    return found


def _split_statements(col: _Collector) -> list[_Text]:
    lines = col.lines
    out: list[_Text] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _strip_comment_only(line):
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        first = i
        text = line[indent:]
        starts, nums, cols = [0], [i + 1], [indent + 1]
        is_command = bool(_COMMAND_HEAD.match(text))
        # `\` at the end of a line continues the statement. Commands keep the backslash and
        # newline (the shell reads them the same way); other statements join with a space.
        while text.endswith("\\") and not text.endswith("\\\\"):
            i += 1
            if i >= len(lines):
                col.error(Pos(i, len(lines[i - 1])), "line continues with '\\' past the end of the file")
                break
            nxt = lines[i]
            if is_command:
                text += "\n"
                starts.append(len(text)); nums.append(i + 1); cols.append(1)
                text += nxt
            else:
                text = text[:-1].rstrip() + " "
                stripped = nxt.lstrip()
                starts.append(len(text)); nums.append(i + 1); cols.append(len(nxt) - len(stripped) + 1)
                text += stripped
        i += 1
        stmt = _Text(text.rstrip() if not is_command else text, starts, nums, cols, lines[first])
        if is_command:
            # Heredoc bodies follow the line that opens them, up to their delimiter line.
            for off, delim, strip_tabs in _find_heredocs(text):
                closed = False
                while i < len(lines):
                    body = lines[i]
                    stmt.text += "\n"
                    stmt.starts.append(len(stmt.text)); stmt.lines.append(i + 1); stmt.cols.append(1)
                    stmt.text += body
                    i += 1
                    if (body.lstrip("\t") if strip_tabs else body) == delim:
                        closed = True
                        break
                if not closed:
                    col.error(stmt.pos(off), f"heredoc '{delim}' is never closed (no line '{delim}' follows)")
        out.append(stmt)
    return out


# ---- tokens of non-command statements ----------------------------------------------------

@dataclass(frozen=True)
class _Tok:
    text: str  # with quotes removed
    start: int
    end: int
    quoted: bool

    def kv(self) -> tuple[str, str] | None:
        m = re.match(r"([A-Za-z_][\w.]*)=", self.text)
        return (m.group(1), self.text[m.end():]) if m else None


class _TokenError(Exception):
    def __init__(self, offset: int, message: str):
        self.offset = offset
        self.message = message


def _tokenize(text: str, start: int = 0) -> list[_Tok]:
    toks = []
    i, n = start, len(text)
    while i < n:
        if text[i] in " \t\n":
            i += 1
            continue
        begin, buf, quoted = i, [], False
        while i < n and text[i] not in " \t\n":
            c = text[i]
            if c in "'\"":
                q, qstart = c, i
                quoted = True
                i += 1
                while i < n and text[i] != q:
                    if q == '"' and text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                        i += 1
                    buf.append(text[i])
                    i += 1
                if i >= n:
                    raise _TokenError(qstart, f"unclosed {q} quote")
                i += 1
            else:
                buf.append(c)
                i += 1
        toks.append(_Tok("".join(buf), begin, i, quoted))
    return toks


# ---- statements ---------------------------------------------------------------------------

class _Parser:
    def __init__(self, file: str, text: str, allow_host_commands: bool):
        self.file = file
        text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as some editors write
        self.lines = split_lines(text)
        self.col = _Collector(file, self.lines)
        self.allow_host_commands = allow_host_commands
        self.recipe = Recipe(path=file, text=text)
        # Hosts an exec line names by spec (`@colab:c1`): name -> (spec, where first named)
        self.implicit: dict[str, tuple[str, Pos]] = {}
        # Where a step's `@name` (and tmux.open's session name) stand, so the second pass
        # can point at them rather than at the start of the line. Keyed by id(step).
        self.where: dict[int, dict[str, Pos]] = {}

    def mark(self, step: Step, **positions: Pos) -> Step:
        self.where[id(step)] = positions
        return step

    def at(self, step: Step, what: str = "ref") -> Pos:
        return self.where.get(id(step), {}).get(what, step.pos)

    def err(self, st: _Text, offset: int, message: str) -> None:
        self.col.error(st.pos(offset), message)

    def parse(self) -> Recipe:
        self.check_characters()
        if self.col.errors:  # lines are not what an editor shows: parse nothing of them
            raise RecipeErrors(self.col.errors)
        statements = _split_statements(self.col)
        entries: list[Definition | Step] = []
        for st in statements:
            try:
                item = self.statement(st)
            except _TokenError as e:
                self.err(st, e.offset, e.message)
                continue
            if item is not None:
                entries.append(item)
        implicit = [Definition("host", n, spec, pos) for n, (spec, pos) in self.implicit.items()]
        self.check(implicit + entries)
        if self.col.errors:
            self.col.errors.sort(key=lambda e: (e.pos.line, e.pos.col))
            raise RecipeErrors(self.col.errors)
        return self.recipe

    def check_characters(self) -> None:
        r"""Lines end at `\n` (or `\r\n`) only. Any other line break or control character is
        an error: an editor may show `# note\u2028@w > rm -rf ~` as one comment line, and a
        NUL cannot reach a shell at all."""
        for n, line in enumerate(self.lines, 1):
            for m in CONTROL_CHARS.finditer(line):
                self.col.error(Pos(n, m.start() + 1), f"{describe_char(m.group())} in a recipe "
                               "(only a newline ends a line; no other control characters)")

    def statement(self, st: _Text) -> Definition | Step | None:
        text = st.text
        head = _COMMAND_HEAD.match(text)
        if head and "->" not in text[: head.start(0) + len(head.group(0))]:
            return self.command(st, head)
        first_word = re.match(r"\S+", text)
        if first_word is None:  # only `\` continuations of blank lines
            return None
        word = first_word.group(0)
        m = _DEFINITION.match(text)
        if m and (len(word) == len(m.group(1))):
            return self.definition(st, m)
        if word == "wait":
            return self.wait(st)
        if word in CONTROL:
            return self.control(st, word)
        if re.search(r"(^|\s)->(\s|$)", text):
            return self.transfer(st)
        if word.startswith("@"):
            if re.match(r"@" + NAME + r"\s*$", text):
                self.err(st, len(text), "expected '> command' after the session name")
            else:
                self.err(st, 0, "expected '@session > command' or a transfer 'SRC -> DST'")
            return None
        close = difflib.get_close_matches(word, KEYWORDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.err(st, 0, f"unknown command '{word}'{hint}")
        return None

    # -- definitions
    def definition(self, st: _Text, m: re.Match) -> Definition | None:
        kind, rest = m.group(1), m.group(2)
        rest_off = m.start(2)
        dm = re.match(r"(\S+?)\s*=\s*(.*)\Z", rest, re.S)
        if not dm:
            self.err(st, rest_off, f"expected '{kind} NAME = value'")
            return None
        name, value = dm.group(1), dm.group(2).strip()
        pattern = _VAR_NAME_RE if kind == "var" else _NAME_RE
        if not pattern.match(name):
            self.err(st, rest_off, f"bad {kind} name '{name}' (letters, digits, '_'"
                     + ("" if kind == "var" else ", '-'") + "; not starting with a digit)")
            return None
        value_off = rest_off + dm.start(2)
        if not value:
            self.err(st, value_off, f"{kind} {name} has no value")
            return None
        if kind == "host":
            problem = spec_problem(value)
            if problem:
                self.err(st, value_off + problem[0], problem[1])
                return None
        elif kind == "storage":
            problem = check_storage_spec(value)
            if problem:
                self.err(st, value_off, problem)
                return None
        return Definition(kind, name, value, st.pos(rest_off))

    def spec_host(self, st: _Text, offset: int, text: str) -> str | None:
        """`colab:c1` (`vast:ID`, `runpod:ID`) where an exec line names a host: the name of
        the host it stands for (defined before the first step), or None after an error."""
        scheme, _, ident = text.partition(":")
        if not self.allow_host_commands:
            self.err(st, offset, f"'@{text}' names a host by its spec, as only train exec takes: "
                     f"in a recipe write 'host NAME = {text}' and use @NAME")
            return None
        if scheme not in SPEC_REF_SCHEMES or not re.fullmatch(SPEC_ID, ident):
            self.err(st, offset, f"'@{text}' is no host: by its spec a host is @colab:NAME, "
                     "@vast:ID or @runpod:ID")
            return None
        # A Colab host is its hosts.toml name (so @colab:c1 and @c1 are one host); an
        # instance is SCHEME-ID.
        name = ident if scheme == "colab" and _NAME_RE.match(ident) else \
            f"{scheme}-{re.sub(r'[^A-Za-z0-9_-]', '_', ident)}"
        spec = f"{scheme}:{ident}"
        if name in self.implicit and self.implicit[name][0] != spec:
            self.err(st, offset, f"'@{text}' and '@{self.implicit[name][0]}' would both be @{name}")
            return None
        self.implicit.setdefault(name, (spec, st.pos(offset)))
        return name

    # -- `@session [timeout=D] > command [&]`
    def command(self, st: _Text, head: re.Match) -> Step | None:
        name = head.group(1)
        if ":" in name:
            name = self.spec_host(st, 1, name)
            if name is None:
                return None
        body = st.text[head.end():]
        body_off = head.end()
        timeout = None
        for tok in _tokenize(head.group(2), 0):
            kv = tok.kv()
            off = head.start(2) + tok.start
            if kv and kv[0] == "timeout":
                if timeout is not None:
                    self.err(st, off, "timeout= given twice")
                    return None
                timeout = self.duration(st, off + len("timeout="), kv[1])
                if timeout is None:
                    return None
            else:
                key = kv[0] if kv else tok.text
                self.err(st, off, f"unknown command option '{key}' (only timeout=DURATION)")
                return None
        # `&` at the end of the command's first logical line runs it in the background.
        docs = _find_heredocs(body)
        first_end = body.find("\n", docs[0][0]) if docs else -1
        logical = body if first_end < 0 else body[:first_end]
        background = False
        stripped = logical.rstrip()
        if stripped.endswith("&") and not re.search(r"(&&|[|>]&)\Z", stripped):
            background = True
            logical = stripped[:-1].rstrip()
            body = logical + ("" if first_end < 0 else body[first_end:])
        if not body.strip():
            self.err(st, body_off, "empty command after '>'")
            return None
        source = st.text.split("\n", 1)[0]
        return Command(st.pos(0), source, session=name, text=body, background=background,
                       timeout=timeout)

    # -- wait @session "regex" | file=PATH | port=N | idle [timeout=D]
    def wait(self, st: _Text) -> Step | None:
        toks = _tokenize(st.text)[1:]
        if not toks or not toks[0].text.startswith("@") or toks[0].quoted:
            self.err(st, toks[0].start if toks else len(st.text), "expected 'wait @session CONDITION'")
            return None
        target = toks[0].text[1:]
        if not _NAME_RE.match(target):
            self.err(st, toks[0].start, f"bad session name '{toks[0].text}'")
            return None
        cond: dict = {}
        timeout = None
        for tok in toks[1:]:
            kv = None if tok.quoted and not re.match(r"\w+=", st.text[tok.start:tok.end]) else tok.kv()
            if tok.quoted and kv is None:
                key, value = "pattern", tok.text
                if value == "":
                    self.err(st, tok.start, "empty pattern")
                    return None
                try:
                    re.compile(value)
                except re.error as e:
                    self.err(st, tok.start, f"bad regex {value!r}: {e}")
                    return None
            elif kv:
                key, value = kv
                if key == "timeout":
                    if timeout is not None:
                        self.err(st, tok.start, "timeout= given twice")
                        return None
                    timeout = self.duration(st, tok.start + 8, value)
                    if timeout is None:
                        return None
                    continue
                if key not in ("file", "port"):
                    self.err(st, tok.start, f"unknown wait option '{key}' (file=, port=, timeout=, idle or \"regex\")")
                    return None
                if not value:
                    self.err(st, tok.start + len(key) + 1, f"{key}= needs a value")
                    return None
                if key == "port" and not (value.startswith("$") or valid_port(value)):
                    self.err(st, tok.start + 5, f"bad port '{value}' (1-65535)")
                    return None
            elif tok.text == "idle":
                key, value = "idle", True
            else:
                self.err(st, tok.start, f"unknown wait condition '{tok.text}' "
                         "(use \"regex\", file=PATH, port=N or idle; quote a pattern)")
                return None
            if cond:
                self.err(st, tok.start, "one condition per wait (write two waits to wait for both)")
                return None
            cond[key] = value
        if not cond:
            self.err(st, len(st.text), "wait needs a condition: \"regex\", file=PATH, port=N or idle")
            return None
        return self.mark(Wait(st.pos(0), st.text, session=target, timeout=timeout, **cond),
                         ref=st.pos(toks[0].start))

    # -- SRC -> DST [delete=true] [exclude=PAT]...
    def transfer(self, st: _Text) -> Step | None:
        toks = _tokenize(st.text)
        arrows = [i for i, t in enumerate(toks) if t.text == "->" and not t.quoted]
        if len(arrows) != 1:
            self.err(st, toks[arrows[1]].start if len(arrows) > 1 else 0,
                     "a transfer has exactly one '->'")
            return None
        a = arrows[0]
        if a != 1 or len(toks) < 3:
            self.err(st, toks[a].start if a != 1 else toks[a].end,
                     "expected 'SRC -> DST' (quote paths that hold spaces)")
            return None
        src = self.endpoint(st, toks[0])
        dst = self.endpoint(st, toks[2])
        if src is None or dst is None:
            return None
        delete, excludes = None, []
        for tok in toks[3:]:
            kv = tok.kv()
            if kv and kv[0] == "delete" and delete is not None:
                self.err(st, tok.start, "delete= given twice")
                return None
            if kv and kv[0] == "delete":
                if _bool_opt(kv[1]):
                    self.err(st, tok.start + 7, "delete= takes true or false")
                    return None
                delete = _truthy(kv[1])
            elif kv and kv[0] == "exclude" and kv[1]:
                excludes.append(kv[1])
            else:
                self.err(st, tok.start, f"unknown transfer option '{tok.text}' (delete=true, exclude=PATTERN)")
                return None
        return Transfer(st.pos(0), st.text, src=src, dst=dst, delete=bool(delete), excludes=tuple(excludes))

    def endpoint(self, st: _Text, tok: _Tok) -> Endpoint | None:
        # `@name:"a path"`: only the path is quoted, so it still names a host or storage
        head = re.match("@" + NAME + ":", tok.text)
        if tok.text.startswith("@") and (not tok.quoted or head and st.text.startswith(head.group(0), tok.start)):
            m = re.match("@(" + NAME + r"):(.*)\Z", tok.text, re.S)
            spec = re.match("@((" + "|".join(SPEC_REF_SCHEMES) + r"):" + SPEC_ID + r"):(.+)\Z",
                            tok.text, re.S) if self.allow_host_commands else None
            if spec:  # exec: `@colab:c1:PATH`
                name = self.spec_host(st, tok.start + 1, spec.group(1))
                return None if name is None else Endpoint(spec.group(3), name, st.pos(tok.start))
            if not m:
                self.err(st, tok.start, f"expected '@name:path', got '{tok.text}'")
                return None
            if not m.group(2):
                self.err(st, tok.end, f"'@{m.group(1)}:' needs a path after ':'")
                return None
            return Endpoint(m.group(2), m.group(1), st.pos(tok.start))
        if not tok.text:
            self.err(st, tok.start, "empty path")
            return None
        return Endpoint(tok.text, None, st.pos(tok.start))

    # -- control commands
    def control(self, st: _Text, word: str) -> Step | None:
        toks = _tokenize(st.text)
        args = toks[1:]
        end = len(st.text)
        if word == "tmux.open":
            if len(args) < 1 or not args[0].text.startswith("@"):
                self.err(st, args[0].start if args else end, "expected 'tmux.open @host as NAME'")
                return None
            host = self.ref(st, args[0], spec_ok=True)
            if host is None:
                return None
            if len(args) < 3 or args[1].text != "as":
                self.err(st, args[1].start if len(args) > 1 else end,
                         "missing 'as NAME': write 'tmux.open @host as NAME'")
                return None
            if not _NAME_RE.match(args[2].text):
                self.err(st, args[2].start, f"bad session name '{args[2].text}'")
                return None
            if len(args) > 3:
                self.err(st, args[3].start, f"unexpected '{args[3].text}' after the session name")
                return None
            return self.mark(TmuxOpen(st.pos(0), st.text, host=host, name=args[2].text),
                             ref=st.pos(args[0].start), name=st.pos(args[2].start))
        if word in ("tmux.close", "tmux.config"):
            if len(args) != 1 or not args[0].text.startswith("@"):
                what = "session" if word == "tmux.close" else "host"
                self.err(st, args[1].start if len(args) > 1 else (args[0].start if args else end),
                         f"expected '{word} @{what}'")
                return None
            name = self.ref(st, args[0], spec_ok=word == "tmux.config")
            if name is None:
                return None
            if word == "tmux.close":
                return self.mark(TmuxClose(st.pos(0), st.text, session=name), ref=st.pos(args[0].start))
            return self.mark(TmuxConfig(st.pos(0), st.text, host=name), ref=st.pos(args[0].start))
        if word == "notify":
            rest = st.text[len(word):].strip()
            if not rest:
                self.err(st, end, "notify needs a message: notify \"text\"")
                return None
            if len(args) == 1 and args[0].quoted:
                rest = args[0].text
            return Notify(st.pos(0), st.text, message=rest)
        if word == "sleep":
            if len(args) != 1:
                self.err(st, args[1].start if len(args) > 1 else end, "expected 'sleep DURATION'")
                return None
            d = self.duration(st, args[0].start, args[0].text)
            return None if d is None else Sleep(st.pos(0), st.text, duration=d)
        if word.startswith("slurm."):
            return self.slurm(st, word, args, end)
        if word == "pick":
            return self.pick(st, args, end)
        # vast.*, runpod.*
        provider, action = word.split(".", 1)
        allowed = CLOUD_OPTIONS[word]
        host = instance = None
        host_pos = st.pos(0)
        options: list[tuple[str, str]] = []
        for tok in args:
            kv = tok.kv()
            if kv:
                if not self.option(st, tok, kv, word, allowed, options):
                    return None
            elif tok.text.startswith("@") and action == "pick" and host is None:
                host = self.ref(st, tok)
                host_pos = st.pos(tok.start)
                if host is None:
                    return None
            elif action in ("start", "stop", "cost") and instance is None and not tok.text.startswith("@"):
                instance = tok.text
            else:
                self.err(st, tok.start, f"unexpected '{tok.text}' in {word}")
                return None
        if action == "pick" and host is None:
            self.err(st, end, f"expected '{word} @host [options]'")
            return None
        return self.mark(Cloud(st.pos(0), st.text, provider=provider, action=action, host=host,
                               instance=instance, options=tuple(options)), ref=host_pos)

    def option(self, st: _Text, tok: _Tok, kv: tuple[str, str], word: str, allowed: dict,
               options: list) -> bool:
        """Check `KEY=VALUE` of statement `word` against its table `allowed` and add it to
        `options`; False (the error said) when it is unknown, given twice or a bad value."""
        key, value = kv
        if key not in allowed:
            known = ", ".join(f"{k}=" for k in allowed) or "none"
            self.err(st, tok.start, f"unknown {word} option '{key}' (known: {known})")
            return False
        if any(k == key for k, _ in options):
            self.err(st, tok.start, f"{key}= given twice")
            return False
        problem = allowed[key](value)
        if problem:  # (a duration's or a list's problem names what it is itself)
            self.err(st, tok.start + len(key) + 1, problem if allowed[key] is _dur_opt
                     else f"{key}=: {problem}" if allowed[key] is _clouds_opt
                     else f"{key}= takes {problem}, got '{value}'")
            return False
        options.append((key, value))
        return True

    def first_ref(self, st: _Text, args: list, end: int, usage: str) -> str | None:
        """The `@name` a statement starts with, or None (the error said, with its `usage`)."""
        if not args or not args[0].text.startswith("@"):
            self.err(st, args[0].start if args else end, f"expected '{usage}'")
            return None
        return self.ref(st, args[0])

    def pick(self, st: _Text, args: list, end: int) -> Step | None:
        """pick @host [clouds=vast,runpod] [gpu=... num_gpus=N min_gpu_ram=GB max_dph=USD limit=N]."""
        usage = "pick @host [clouds=vast,runpod] [gpu=NAME num_gpus=N min_gpu_ram=GB max_dph=USD]"
        host = self.first_ref(st, args, end, usage)
        if host is None:
            return None
        options: list[tuple[str, str]] = []
        for tok in args[1:]:
            kv = tok.kv()
            if not kv:
                self.err(st, tok.start, f"unexpected '{tok.text}': write '{usage}'")
                return None
            if not self.option(st, tok, kv, "pick", PICK_OPTIONS, options):
                return None
        return self.mark(Pick(st.pos(0), st.text, host=host, options=tuple(options)),
                         ref=st.pos(args[0].start))

    def slurm(self, st: _Text, word: str, args: list, end: int) -> Step | None:
        """slurm.alloc @login as NAME [KEY=VALUE]..., slurm.wait @NAME [...], slurm.release @NAME."""
        action = word.split(".", 1)[1]
        usage = {"alloc": "slurm.alloc @login as NAME [nodes=N time=4h ...]",
                 "wait": "slurm.wait @NAME [timeout=D poll=D keep=true]",
                 "release": "slurm.release @NAME"}[action]
        host = self.first_ref(st, args, end, usage)
        if host is None:
            return None
        rest, name, positions = args[1:], None, {"ref": st.pos(args[0].start)}
        if action == "alloc":
            if len(rest) < 2 or rest[0].text != "as":
                self.err(st, rest[0].start if rest else end, f"missing 'as NAME': write '{usage}'")
                return None
            name = rest[1].text
            if not _NAME_RE.match(name) or name == "local":
                self.err(st, rest[1].start, f"bad host name '{name}'")
                return None
            positions["name"] = st.pos(rest[1].start)
            rest = rest[2:]
        options: list[tuple[str, str]] = []
        for tok in rest:
            kv = tok.kv()
            if not kv or action == "release":
                self.err(st, tok.start, f"unexpected '{tok.text}': write '{usage}'")
                return None
            key, value = kv
            if any(k == key for k, _ in options):
                self.err(st, tok.start, f"{key}= given twice")
                return None
            if action == "alloc" and key == "recover":  # the job's (runtime/recovery.py), not salloc's
                problem = _recover_opt(value)
                problem = problem and f"recover= takes {problem}, got '{value}'"
            elif action == "alloc":
                problem = option_problem(key, value)
            elif key not in SLURM_WAIT_OPTIONS:
                problem = f"unknown slurm.wait option '{key}' (known: timeout=, poll=, keep=)"
            else:
                problem = SLURM_WAIT_OPTIONS[key](value)
                problem = problem and (problem if key != "keep" else f"keep= takes {problem}")
            if problem:
                self.err(st, tok.start if problem.startswith("unknown") else tok.start + len(key) + 1, problem)
                return None
            options.append((key, value))
        return self.mark(Slurm(st.pos(0), st.text, action=action, host=host, name=name,
                               options=tuple(options)), **positions)

    def ref(self, st: _Text, tok: _Tok, spec_ok: bool = False) -> str | None:
        name = tok.text[1:]
        if spec_ok and tok.text.startswith("@") and ":" in name and not tok.quoted:
            return self.spec_host(st, tok.start + 1, name)
        if not tok.text.startswith("@") or not _NAME_RE.match(name):
            self.err(st, tok.start, f"expected '@name', got '{tok.text}'")
            return None
        return name

    def duration(self, st: _Text, offset: int, text: str) -> Duration | None:
        try:
            return Duration.parse(text)
        except ValueError as e:
            self.err(st, offset, str(e))
            return None

    # ---- second pass: what only the whole file can tell
    def check(self, entries: list[Definition | Step]) -> None:
        defs = self.recipe.definitions
        sessions: dict[str, str] = {}  # open session -> host
        closed: set[str] = set()
        seen_step = False

        def pos_err(pos: Pos, message: str) -> None:
            self.col.error(pos, message)

        def host_known(name: str) -> bool:
            if name == "local" or (name in defs and defs[name].kind == "host"):
                return True
            return undefined_ok(name)

        def undefined_ok(name: str) -> bool:
            # `train exec` lines name hosts and storages without defining them: a hosts.toml
            # or storages.toml name, an ssh alias, resolved when the job starts.
            return self.allow_host_commands and name not in defs and name not in sessions \
                and name not in closed

        for e in entries:
            if isinstance(e, Definition):
                if seen_step:
                    pos_err(e.pos, f"definition of {e.kind} {e.name} after workflow steps "
                            "(definitions come first)")
                    continue
                if e.name in defs:
                    first = defs[e.name]
                    pos_err(e.pos, f"name '{e.name}' already defined as {first.kind} on line {first.pos.line}")
                    continue
                defs[e.name] = e
                continue
            seen_step = True
            step = e
            if isinstance(step, (Command, Wait)):
                name = step.session
                if name in sessions:
                    self.recipe.steps.append(step)
                    continue
                if isinstance(step, Command) and self.allow_host_commands and host_known(name):
                    self.recipe.steps.append(HostCommand(step.pos, step.source, host=name,
                                                         text=step.text, timeout=step.timeout))
                    continue
                at = self.at(step)
                if name in closed:
                    pos_err(at, f"session '{name}' was closed by tmux.close before this line")
                elif host_known(name):
                    pos_err(at, f"@{name} is a host; commands go to sessions: "
                            f"add 'tmux.open @{name} as SESSION' and use @SESSION")
                elif name in defs:
                    pos_err(at, f"@{name} is a {defs[name].kind}, not a session")
                else:
                    pos_err(at, f"session '{name}' used before 'tmux.open @HOST as {name}'")
                continue
            if isinstance(step, TmuxOpen):
                if not host_known(step.host):
                    pos_err(self.at(step), self.unknown(step.host, "host"))
                    continue
                if step.name in sessions:
                    pos_err(self.at(step, "name"), f"session '{step.name}' is already open")
                    continue
                if step.name in defs or step.name == "local":
                    pos_err(self.at(step, "name"), f"session name '{step.name}' is already used by a "
                            f"{defs[step.name].kind if step.name in defs else 'host'}")
                    continue
                sessions[step.name] = step.host
                closed.discard(step.name)
            elif isinstance(step, TmuxClose):
                if step.session not in sessions:
                    pos_err(self.at(step), f"tmux.close @{step.session}: no open session of that name")
                    continue
                del sessions[step.session]
                closed.add(step.session)
            elif isinstance(step, TmuxConfig):
                if not host_known(step.host):
                    pos_err(self.at(step), self.unknown(step.host, "host"))
                    continue
            elif isinstance(step, Transfer):
                bad = False
                for ep in (step.src, step.dst):
                    if ep.name is None or ep.name == "local" or undefined_ok(ep.name):
                        continue
                    if self.allow_host_commands and ep.name in sessions:  # exec: the session's host
                        where = "src" if ep is step.src else "dst"
                        step = replace(step, **{where: replace(ep, name=sessions[ep.name])})
                        continue
                    d = defs.get(ep.name)
                    if d is None or d.kind == "var":
                        msg = (f"@{ep.name} is a session; transfers name the host" if ep.name in sessions
                               else self.unknown(ep.name, "host or storage"))
                        pos_err(ep.pos, msg)
                        bad = True
                if bad:
                    continue
            elif isinstance(step, (Cloud, Pick)) and step.host is not None:
                if not host_known(step.host):
                    pos_err(self.at(step), self.unknown(step.host, "host"))
                    continue
            elif isinstance(step, Slurm):
                if not host_known(step.host):
                    pos_err(self.at(step), self.unknown(step.host, "host"))
                    continue
                if step.name is not None:  # slurm.alloc defines its host
                    if step.name in defs or step.name in sessions:
                        what = f"{defs[step.name].kind} on line {defs[step.name].pos.line}" \
                            if step.name in defs else "session"
                        pos_err(self.at(step, "name"), f"name '{step.name}' already defined as {what}")
                        continue
                    defs[step.name] = Definition("host", step.name, "placeholder", self.at(step, "name"))
            self.recipe.steps.append(step)
        self.check_variable_loops()

    def check_variable_loops(self) -> None:
        """`var A = $B` with `var B = $A` can never be expanded: say so now, not at run time."""
        variables = self.recipe.variables
        reported: set[str] = set()
        for name, d in self.recipe.of_kind("var").items():
            try:
                expand("${" + name + "}", variables, lambda _: "")
            except ExpandError as e:
                loop = frozenset(str(e).rpartition(": ")[2].split(" -> "))
                if not loop & reported:
                    reported |= loop
                    self.col.error(d.pos, str(e))

    def unknown(self, name: str, what: str) -> str:
        defs = self.recipe.definitions
        if name in defs:  # defined, but as something else (a var where a host belongs)
            return f"@{name} is a {defs[name].kind}, not a {what}"
        names = [n for n, d in defs.items() if d.kind in what.split(" or ")]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean @{close[0]}?)" if close else ""
        return f"undefined {what} @{name}{hint}"


def _truthy(v: str) -> bool:
    return v.lower() in ("true", "yes", "1")


def check_storage_spec(spec: str) -> str | None:
    if " " in spec.strip() or spec.strip() in ('""', "''"):
        return f"bad storage spec '{spec}' (expected SCHEME:BUCKET or a storage name)"
    if ":" in spec:
        scheme, _, bucket = spec.partition(":")
        if scheme not in STORAGE_SCHEMES and not scheme.startswith("$"):
            close = difflib.get_close_matches(scheme, STORAGE_SCHEMES, n=1)
            hint = f" (did you mean '{close[0]}:'?)" if close else ""
            return f"unknown storage kind '{scheme}:'{hint}; known: " + ", ".join(s + ":" for s in STORAGE_SCHEMES)
        if not bucket and scheme not in ("gdrive",) and not scheme.startswith("$"):
            return f"'{scheme}:' needs a " + ("path" if scheme == "local" else "bucket") + f" after '{scheme}:'"
    return None


def parse(text: str, file: str = "<recipe>", *, allow_host_commands: bool = False) -> Recipe:
    """Parse recipe text. Raises RecipeErrors (every mistake found) and nothing else."""
    try:
        return _Parser(file, text, allow_host_commands).parse()
    except RecipeErrors:
        raise
    except RecursionError as e:  # pathological nesting; still one clean error
        raise RecipeErrors([RecipeError(file, Pos(1, 1), f"recipe too deeply nested: {e}")]) from None
