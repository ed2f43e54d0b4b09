"""Valid recipes parse into the expected steps; expand() fills in variables and secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainsh.recipe.expand import ExpandError, expand, secret_names
from trainsh.recipe.model import (
    Cloud,
    Command,
    Duration,
    Endpoint,
    HostCommand,
    Notify,
    Pos,
    RecipeErrors,
    Sleep,
    TmuxClose,
    TmuxOpen,
    Transfer,
    Wait,
)
from trainsh.recipe.parser import parse

# The seed README's Quick Example section, shipped with the tests (tests/unit/data).
SEED = Path(__file__).parent / "data" / "seed-quick-example.md"

# The seed README's "Quick Example", verbatim.
QUICK_EXAMPLE = """\
# Variables
var MODEL = llama-7b
var WORKDIR = /workspace/train

# Hosts (machines)
host gpu = placeholder
host backup = myserver

# Storage
storage output = r2:my-bucket

# Workflow
vast.pick @gpu num_gpus=1 min_gpu_ram=24
vast.wait timeout=5m

# Create a tmux session "work" on the gpu host
tmux.open @gpu as work

# Commands reference the session name, not the host
@work > cd $WORKDIR && git clone https://github.com/user/repo
@work > pip install -r requirements.txt
@work > python train.py --model $MODEL &

wait @work idle timeout=2h

# Transfers reference the host (for SSH connection info)
@gpu:$WORKDIR/model -> @output:/models/$MODEL/
@gpu:$WORKDIR/model -> @backup:/backup/

vast.stop
tmux.close @work
"""

HEAD = "host gpu = placeholder\ntmux.open @gpu as w\n"


def steps(body: str, **kw):
    """Steps of HEAD + body, without the tmux.open from HEAD."""
    return parse(HEAD + body, "t.recipe", **kw).steps[1:]


def one(body: str, **kw):
    (step,) = steps(body, **kw)
    return step


def test_quick_example_is_the_seeds():
    seed = SEED.read_text()
    m = re.search(r"### Quick Example\s*```\n(.*?)```", seed, re.S)
    assert m and m.group(1) == QUICK_EXAMPLE


def test_quick_example_parses_into_the_expected_steps():
    r = parse(QUICK_EXAMPLE, "quick.recipe")
    assert r.variables == {"MODEL": "llama-7b", "WORKDIR": "/workspace/train"}
    assert r.hosts == {"gpu": "placeholder", "backup": "myserver"}
    assert r.storages == {"output": "r2:my-bucket"}
    assert r.definitions["WORKDIR"].pos == Pos(3, 5)

    kinds = [s.kind for s in r.steps]
    assert kinds == ["cloud", "cloud", "tmux.open", "command", "command", "command", "wait",
                     "transfer", "transfer", "cloud", "tmux.close"]
    pick, vwait, opened, c1, c2, c3, wait, t1, t2, stop, close = r.steps

    assert isinstance(pick, Cloud) and (pick.provider, pick.action, pick.host) == ("vast", "pick", "gpu")
    assert pick.options == (("num_gpus", "1"), ("min_gpu_ram", "24"))
    assert pick.pos == Pos(13, 1)
    assert vwait.action == "wait" and vwait.option("timeout") == "5m" and vwait.host is None

    assert opened == TmuxOpen(Pos(17, 1), "tmux.open @gpu as work", host="gpu", name="work")

    assert c1 == Command(Pos(20, 1), "@work > cd $WORKDIR && git clone https://github.com/user/repo",
                         session="work", text="cd $WORKDIR && git clone https://github.com/user/repo")
    assert c2.text == "pip install -r requirements.txt" and not c2.background
    assert c3.text == "python train.py --model $MODEL" and c3.background
    assert c3.timeout is None

    assert isinstance(wait, Wait) and wait.session == "work" and wait.idle
    assert wait.timeout == Duration(7200.0, "2h")
    assert (wait.pattern, wait.file, wait.port) == (None, None, None)

    assert isinstance(t1, Transfer)
    assert t1.src == Endpoint("$WORKDIR/model", "gpu", Pos(27, 1))
    assert t1.dst == Endpoint("/models/$MODEL/", "output", Pos(27, 24))
    assert str(t2.dst) == "@backup:/backup/"
    assert not t1.delete and t1.excludes == ()

    assert stop.action == "stop" and stop.instance is None
    assert close == TmuxClose(Pos(31, 1), "tmux.close @work", session="work")


# ---- commands --------------------------------------------------------------------------------

def test_command_splits_at_first_gt_and_keeps_redirects():
    c = one("@w > echo a > b.txt\n")
    assert isinstance(c, Command)
    assert (c.session, c.text, c.background) == ("w", "echo a > b.txt", False)
    assert one("@w > cat x >> y 2> err\n").text == "cat x >> y 2> err"
    assert one("@w>echo tight\n").text == "echo tight"


def test_command_arrow_inside_is_not_a_transfer():
    c = one("@w > echo a -> b\n")
    assert isinstance(c, Command) and c.text == "echo a -> b"


@pytest.mark.parametrize("line, text, background", [
    ("@w > python train.py &", "python train.py", True),
    ("@w > python train.py   &  ", "python train.py", True),
    ("@w > make && make test", "make && make test", False),
    ("@w > make &&", "make &&", False),
    ("@w > python train.py 2>&1", "python train.py 2>&1", False),
    ("@w > python train.py >&2", "python train.py >&2", False),
    ("@w > python train.py 2>&1 &", "python train.py 2>&1", True),
    ("@w > a | b |&", "a | b |&", False),
    ("@w > echo '&'", "echo '&'", False),
])
def test_background_ampersand(line, text, background):
    c = one(line + "\n")
    assert (c.text, c.background) == (text, background)


def test_command_timeout_option():
    c = one("@w timeout=2h > python train.py\n")
    assert c.timeout == Duration(7200.0, "2h") and c.text == "python train.py"


@pytest.mark.parametrize("opener, delim", [
    ("<<'EOF'", "EOF"),
    ('<<"EOF"', "EOF"),
    ("<<EOF", "EOF"),
    ("<< END_OF_IT", "END_OF_IT"),
    ("<<\\EOF", "EOF"),
])
def test_heredoc_body_belongs_to_the_command(opener, delim):
    body = f"@w > cat > run.sh {opener}\nvar X = 1\n@w > not a step\n{delim}\nsleep 5\n"
    c, s = steps(body)
    assert isinstance(c, Command)
    assert c.text == f"cat > run.sh {opener}\nvar X = 1\n@w > not a step\n{delim}"
    assert c.source == f"@w > cat > run.sh {opener}"
    assert isinstance(s, Sleep) and s.pos == Pos(7, 1)


def test_heredoc_dash_allows_tab_indented_delimiter():
    c, s = steps("@w > cat <<-EOF\n\tline\n\tEOF\nsleep 1\n")
    assert c.text == "cat <<-EOF\n\tline\n\tEOF"
    assert s.pos.line == 6


def test_heredoc_without_dash_needs_the_delimiter_unindented():
    with pytest.raises(RecipeErrors):
        parse(HEAD + "@w > cat <<EOF\nx\n\tEOF\n", "t.recipe")


def test_heredoc_with_background_and_pipe():
    c = one("@w > cat <<EOF | sh &\necho hi\nEOF\n")
    assert c.background
    assert c.text == "cat <<EOF | sh\necho hi\nEOF"


def test_two_heredocs_on_one_line():
    c, s = steps("@w > paste <<A <<B\n1\nA\n2\nB\nsleep 1\n")
    assert c.text == "paste <<A <<B\n1\nA\n2\nB"
    assert s.pos.line == 8


def test_here_string_is_not_a_heredoc():
    c, s = steps("@w > grep x <<< \"$LINE\"\nsleep 1\n")
    assert c.text == 'grep x <<< "$LINE"'
    assert isinstance(s, Sleep) and s.pos.line == 4


def test_quoted_heredoc_marker_is_not_a_heredoc():
    c, s = steps("@w > echo '<<EOF' \"<<EOF\"\nsleep 1\n")
    assert c.text == "echo '<<EOF' \"<<EOF\""
    assert isinstance(s, Sleep)


def test_arithmetic_shift_is_not_a_heredoc():
    c, s = steps("@w > echo $((1<<4)) && (( x = 1 << 2 ))\nsleep 1\n")
    assert c.text == "echo $((1<<4)) && (( x = 1 << 2 ))"
    assert isinstance(s, Sleep)


def test_continuation_lines_in_commands_keep_backslash_newline():
    c, s = steps("@w > python train.py \\\n    --lr 0.1 \\\n    --epochs 3 &\nsleep 1\n")
    assert c.text == "python train.py \\\n    --lr 0.1 \\\n    --epochs 3"
    assert c.background
    assert c.source == "@w > python train.py \\"
    assert s.pos == Pos(6, 1)


def test_continuation_lines_in_other_statements_join_with_a_space():
    r = parse("host gpu = placeholder\nvast.pick @gpu \\\n   num_gpus=2 \\\n   gpu=RTX_4090\n", "t")
    (pick,) = r.steps
    assert pick.options == (("num_gpus", "2"), ("gpu", "RTX_4090"))
    r = parse("var LONG = a \\\n  b\n", "t")
    assert r.variables == {"LONG": "a b"}


def test_escaped_backslash_at_end_is_not_a_continuation():
    c, s = steps("@w > echo a\\\\\nsleep 1\n")
    assert c.text == "echo a\\\\"
    assert isinstance(s, Sleep)


def test_comments_blank_lines_and_indentation():
    r = parse("  # c\n\n\tvar A = 1\n   host gpu = placeholder\n", "t")
    assert r.definitions["A"].pos == Pos(3, 6)
    assert r.steps == []


def test_empty_recipe():
    r = parse("", "t")
    assert r.steps == [] and r.definitions == {}


# ---- wait ------------------------------------------------------------------------------------

def test_wait_file_is_a_file_wait_not_idle():
    w = one("wait @w file=/tmp/idle.flag\n")
    assert (w.file, w.idle, w.pattern, w.port) == ("/tmp/idle.flag", False, None, None)
    assert w.condition == "file /tmp/idle.flag"


@pytest.mark.parametrize("cond, pattern", [
    ('"epoch \\d+ done"', r"epoch \d+ done"),
    ("'loss: [0-9.]+'", "loss: [0-9.]+"),
    ("'idle'", "idle"),
    ('"say \\"hi\\""', 'say "hi"'),
    ('"file=x"', "file=x"),
])
def test_wait_quoted_patterns(cond, pattern):
    w = one(f"wait @w {cond} timeout=30m\n")
    assert w.pattern == pattern
    assert w.timeout == Duration(1800.0, "30m")
    assert not w.idle and w.file is None


def test_wait_port_idle_and_quoted_values():
    assert one("wait @w port=8080\n").port == "8080"
    assert one("wait @w port=$PORT\n").port == "$PORT"
    w = one("wait @w idle\n")
    assert w.idle and w.timeout is None and w.condition == "idle"
    assert one('wait @w file="/tmp/a b"\n').file == "/tmp/a b"
    assert one('wait @w idle timeout="5m"\n').timeout.seconds == 300


def test_wait_timeout_may_come_first():
    w = one("wait @w timeout=1h \"ready\"\n")
    assert w.pattern == "ready" and w.timeout.seconds == 3600


# ---- durations ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("5m", 300), ("2h", 7200), ("300", 300), ("1h30m", 5400), ("1.5h", 5400),
    ("1d", 86400), ("2H", 7200), (".5m", 30), ("1m30", 90), ("0.5", 0.5),
])
def test_durations(text, seconds):
    d = Duration.parse(text)
    assert d.seconds == seconds and d.text == text
    s = one(f"sleep {text}\n")
    assert isinstance(s, Sleep) and s.duration.seconds == seconds


@pytest.mark.parametrize("text", ["5x", "0s", "0", "1h1h", "-3m", "m5", "", " ", "1 h", "5mm",
                                  "1.5.h", "1e3", "9" * 400, "inf", "nan"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        Duration.parse(text)


def test_duration_of_and_str():
    assert str(Duration.of(90)) == "1m30s"
    assert str(Duration.of(7200)) == "2h"
    assert str(Duration.of(2.5)) == "2.5s"


# ---- control steps --------------------------------------------------------------------------

def test_notify_sleep_and_vast_steps():
    n, n2, s, start, cost, vw = steps('notify "training done"\nnotify done at $MODEL\nsleep 1h30m\n'
                                      "vast.start 12345\nvast.cost\n"
                                      "vast.wait timeout=10m poll=30s stop_on_fail=true\n")
    assert n == Notify(Pos(3, 1), 'notify "training done"', message="training done")
    assert n2.message == "done at $MODEL"
    assert s.duration.seconds == 5400
    assert (start.action, start.instance) == ("start", "12345")
    assert cost.action == "cost"
    assert vw.options == (("timeout", "10m"), ("poll", "30s"), ("stop_on_fail", "true"))


def test_transfer_options_and_local_paths():
    t = one("./data -> @gpu:/workspace/data delete=true exclude=*.ckpt exclude=.git\n")
    assert t.src == Endpoint("./data", None, Pos(3, 1))
    assert t.dst.name == "gpu" and t.dst.path == "/workspace/data"
    assert t.delete and t.excludes == ("*.ckpt", ".git")
    t = one('"./my data" -> @local:/tmp/x\n')
    assert t.src.path == "./my data" and t.dst.name == "local"
    t = one('@gpu:"/ws/my data/" -> "@gpu:x"\n')  # a quoted path keeps its host; all quoted: local
    assert (t.src.name, t.src.path) == ("gpu", "/ws/my data/")
    assert (t.dst.name, t.dst.path) == (None, "@gpu:x")


def test_session_can_be_reopened_after_close():
    got = steps("tmux.close @w\ntmux.open @gpu as w\n@w > ls\n")
    assert [s.kind for s in got] == ["tmux.close", "tmux.open", "command"]


def test_local_host_needs_no_definition():
    r = parse("tmux.open @local as box\n@box > ls\n", "t")
    assert r.steps[0].host == "local"


# ---- train exec mode ------------------------------------------------------------------------

def test_exec_mode_host_command():
    r = parse("@local > ls -la\n", "<exec>", allow_host_commands=True)
    (c,) = r.steps
    assert c == HostCommand(Pos(1, 1), "@local > ls -la", host="local", text="ls -la")


def test_exec_mode_defined_host_and_timeout():
    r = parse("host g = root@10.0.0.1 -p 2222\n@g timeout=5m > nvidia-smi\n", "<exec>",
              allow_host_commands=True)
    (c,) = r.steps
    assert isinstance(c, HostCommand) and c.host == "g" and c.timeout.seconds == 300


def test_exec_mode_sessions_still_win():
    r = parse(HEAD + "@w > ls\n@gpu > uptime\n", "<exec>", allow_host_commands=True)
    assert [type(s) for s in r.steps] == [TmuxOpen, Command, HostCommand]


def test_exec_mode_names_hosts_and_storages_without_defining_them():
    # resolved when the job starts: a hosts.toml or storages.toml name, an ssh alias
    r = parse("@gpu1 > uptime\n./src/ -> @gpu1:x/\n@lake:/a -> ./a\ntmux.open @box as w\n"
              "@w:/tmp/f -> ./f\ntmux.config @box\n", "<exec>", allow_host_commands=True)
    assert r.steps[0] == HostCommand(Pos(1, 1), "@gpu1 > uptime", host="gpu1", text="uptime")
    assert (r.steps[1].dst.name, r.steps[2].src.name) == ("gpu1", "lake")
    assert r.steps[4].src == Endpoint("/tmp/f", "box", Pos(5, 1))  # a session: its host
    assert r.definitions == {}


def test_exec_mode_still_refuses_a_closed_session_and_a_var():
    with pytest.raises(RecipeErrors) as info:
        parse("var X = 1\ntmux.open @local as w\ntmux.close @w\n@w > ls\n./a -> @w:/b\n"
              "./a -> @X:/b\n", "<exec>", allow_host_commands=True)
    assert [(e.pos.line, e.message) for e in info.value.errors] == [
        (4, "session 'w' was closed by tmux.close before this line"),
        (5, "undefined host or storage @w"),
        (6, "@X is a var, not a host or storage")]


def test_host_command_is_an_error_outside_exec_mode():
    with pytest.raises(RecipeErrors) as info:
        parse("@local > ls -la\n", "t")
    assert "@local is a host" in info.value.errors[0].message


# ---- host and storage specs ------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    "placeholder", "myserver", "root@1.2.3.4", "root@1.2.3.4 -p 2222", "me@box -i ~/.ssh/id_ed25519",
    "me@box -J jump@bastion", "me@box -o StrictHostKeyChecking=no", "vast:123", "colab:mine",
    "runpod:abc", "local", "me@box -p $PORT", "$HOST_SPEC", "root@h -p2222",
])
def test_good_host_specs(spec):
    assert parse(f"host h = {spec}\n", "t").hosts == {"h": spec}


@pytest.mark.parametrize("spec", ["r2:bucket", "b2:b", "s3:b", "gdrive:folder", "local:/data",
                                  "placeholder", "mystore", "$SCHEME:bucket"])
def test_good_storage_specs(spec):
    assert parse(f"storage s = {spec}\n", "t").storages == {"s": spec}


# ---- expand ----------------------------------------------------------------------------------

def test_expand_plain_and_braced():
    v = {"MODEL": "llama", "DIR": "/w"}
    assert expand("$DIR/$MODEL-${MODEL}x", v) == "/w/llama-llamax"


def test_expand_leaves_unknown_names_for_the_shell():
    assert expand("echo $HOME ${USER} $MODEL", {"MODEL": "m"}) == "echo $HOME ${USER} m"


def test_expand_escaped_dollar_is_not_expanded():
    assert expand(r"echo \$MODEL $MODEL", {"MODEL": "m"}) == r"echo \$MODEL m"
    assert expand(r"echo \$MODEL", {"MODEL": "m"}, keep_escapes=False) == "echo $MODEL"


def test_expand_is_recursive():
    v = {"ROOT": "/w", "RUN": "$ROOT/runs", "OUT": "${RUN}/out"}
    assert expand("$OUT", v) == "/w/runs/out"


def test_expand_cycle_is_an_error():
    with pytest.raises(ExpandError, match="A -> B -> A"):
        expand("$A", {"A": "x$B", "B": "y${A}"})
    with pytest.raises(ExpandError):
        expand("$SELF", {"SELF": "$SELF"})


def test_expand_same_var_twice_is_not_a_cycle():
    assert expand("$A", {"A": "$B$B", "B": "b"}) == "bb"


def test_expand_secret_calls_the_resolver():
    asked = []

    def secret(name):
        asked.append(name)
        return f"<{name}>"

    out = expand("token=${secret:HF_TOKEN} k=${secret:R2_KEY} $X", {"X": "${secret:HF_TOKEN}"}, secret)
    assert out == "token=<HF_TOKEN> k=<R2_KEY> <HF_TOKEN>"
    assert asked == ["HF_TOKEN", "R2_KEY", "HF_TOKEN"]
    assert secret_names("a ${secret:B} ${secret:A} ${secret:B}") == ["B", "A"]


def test_expand_secret_without_resolver_is_an_error():
    with pytest.raises(ExpandError, match="HF_TOKEN"):
        expand("${secret:HF_TOKEN}", {})


def test_expand_secret_resolver_errors_propagate():
    def secret(name):
        raise ExpandError(f"no secret {name}")

    with pytest.raises(ExpandError, match="no secret X"):
        expand("${secret:X}", {}, secret)


def test_byte_order_mark_and_crlf_line_ends_are_accepted():
    text = "\ufeffvar A = 1\r\nhost gpu = local\r\ntmux.open @gpu as w\r\n@w > echo $A\r\n"
    r = parse(text, "t.recipe")
    assert r.variables == {"A": "1"}
    (_, cmd) = r.steps
    assert (cmd.text, cmd.pos) == ("echo $A", Pos(4, 1))


def test_a_line_break_other_than_newline_never_starts_a_statement():
    # An editor shows this as one comment line; the touch must not become a step.
    text = "host gpu = local\ntmux.open @gpu as w\n# note: nothing below runs\u2028@w > touch ~/x\n"
    with pytest.raises(RecipeErrors) as info:
        parse(text, "t.recipe")
    (err,) = info.value.errors
    assert (err.pos.line, err.pos.col) == (3, 27)
    assert "line separator U+2028" in err.message
    assert err.render().splitlines()[1] == "    # note: nothing below runs\ufffd@w > touch ~/x"


def test_host_specs_hosts_and_ports_are_checked():
    from trainsh.kinds import spec_problem as check_host_spec

    for good in ("user@gpu-1.example.com", "root@203.0.113.7 -p 2222", "::1", "user@[::1]",
                 "my_alias", "gpu.", "local"):
        assert check_host_spec(good) is None, good
    for bad, where in (("user@:22", 5), ("user@box:22", 5), ('""', 0), ("''", 0), ("u@a/b", 2)):
        problem = check_host_spec(bad)
        assert problem and problem[0] == where, (bad, problem)
