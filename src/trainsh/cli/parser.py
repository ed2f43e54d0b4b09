"""`train`'s command line: the argparse tree, built one group at a time (`only`) so that a
command such as `train vast list` does not wait for 80-odd parsers it does not use."""

from __future__ import annotations

import argparse

from trainsh.version import __version__
from trainsh import numbers


EPILOG = """\
Recipes (.recipe files) open tmux sessions on hosts, run commands, wait for patterns, files,
ports or idle sessions, and move files. Every run is a job with logs and resume.

  train recipe run examples/quickstart.recipe     run a recipe on this machine
  train recipe check my.recipe                    report every mistake, run nothing
  train exec '@local > nvidia-smi'                run one command
  train recipe logs --last                        what the last job did

Settings live in ~/.config/tmux-trainsh (TRAINSH_HOME moves them)."""


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line, like every other bad input: what is wrong and where the
    usage is (argparse would print the whole usage block first)."""

    def error(self, message: str):
        self.exit(2, f"train: {message} (see '{self.prog} --help')\n")


class _Unused:
    """What a group's parser is built into when argv names another group: every call is taken
    and dropped (80-odd parsers cost ~15 ms that a command such as `train vast list` waits for)."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self


class _OnlyGroup:
    """The top-level subparsers, filling in only group `only`: the others are listed (for help
    and for the error naming the choices) but left without arguments."""

    def __init__(self, sub, only: str):
        self.sub, self.only = sub, only

    def add_parser(self, name: str, **kwargs):
        made = self.sub.add_parser(name, **kwargs)
        return made if name == self.only else _Unused()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, just that group's part of it is filled in (enough
    to parse an argv whose group it is)."""
    p = _Parser(
        prog="train", description="Training automation for rented GPU hosts and cloud storage.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"trainsh {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="group", metavar="COMMAND")
    if only is not None:
        sub = _OnlyGroup(sub, only)

    # recipe
    rp = sub.add_parser("recipe", help="run, check and inspect recipes and their jobs",
                        description="Run, check and inspect recipes and their jobs.")
    rs = rp.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    run = rs.add_parser("run", help="run a recipe as a new job",
                        description="Run a recipe (a NAME from the recipes folder or a PATH; "
                                    "a FILE.py is a Python recipe, its main(job, ...) run with "
                                    "--var values as arguments).")
    run.add_argument("recipe", help="recipe name or path")
    _run_options(run)
    run.add_argument("--attach", action="store_true",
                     help="open a tmux view of the job's sessions as they open (train recipe attach)")
    chk = rs.add_parser("check", help="report every mistake in a recipe without running it",
                        description="Report every mistake in the recipes without running them. "
                                    "With --var/--host/--storage, also what `run` with the same "
                                    "flags would refuse before its first step.")
    chk.add_argument("recipe", nargs="+", help="recipe names or paths")
    _spec_options(chk)
    rs.add_parser("list", help="list recipes in the recipes folder")
    sh = rs.add_parser("show", help="show a recipe's definitions and steps")
    sh.add_argument("recipe", help="recipe name or path")
    nw = rs.add_parser("new", help="create a recipe from a template")
    nw.add_argument("name", help="the new recipe's name (a file NAME.recipe in the recipes folder)")
    ed = rs.add_parser("edit", help="edit a recipe in $EDITOR, then check it")
    ed.add_argument("recipe", help="recipe name or path")
    lg = rs.add_parser("logs", help="show a job's log with each step's output",
                       description="Without arguments: recent jobs and where their logs are.")
    lg.add_argument("job", nargs="?", help="job id (or a unique prefix)")
    lg.add_argument("--last", action="store_true", help="the most recent job")
    st = rs.add_parser("status", help="running jobs, sessions still open, and how to attach to them")
    st.add_argument("--all", action="store_true", help="include finished jobs")
    jb = rs.add_parser("jobs", help="job history")
    jb.add_argument("--all", action="store_true", help="every job, not only the last 20")
    rsm = rs.add_parser("resume", help="resume an interrupted job (the last one by default)")
    rsm.add_argument("job", nargs="?", help="job id (or a unique prefix); default: the last interrupted job")
    rsm.add_argument("--no-visual", action="store_true", help="plain line-by-line output (no live view)")
    rsm.add_argument("--keep-sessions", action="store_true",
                     help="keep the job's tmux sessions when it fails")
    rsm.add_argument("--keep-hosts", action="store_true",
                     help="keep the machines the job rented, started or allocated when it fails")
    rsm.add_argument("--from-scratch", action="store_true",
                     help="a Python recipe's job: run the program as a new job with the same "
                          "--var/--host/--storage, replaying nothing")
    at = rs.add_parser("attach", help="watch a job's tmux sessions live, one pane each",
                       description="Open (or re-use) a local tmux session with one pane per "
                                   "session of the job, each a live client of that session "
                                   "(read-only unless --rw).")
    at.add_argument("job", nargs="?", help="job id (or a unique prefix); default: the last running job")
    at.add_argument("--rw", action="store_true", help="let keys typed in a pane reach the session")
    at.add_argument("--detach", action="store_true",
                    help="make the view but do not attach to it; print how to")

    ex = sub.add_parser("exec", help="run recipe lines directly",
                        description="Run DSL lines directly, e.g. train exec '@local > nvidia-smi'. "
                                    "@NAME is a session opened earlier in the same exec, else a "
                                    "hosts.toml or storages.toml name, an ssh alias or local; "
                                    "'@host > cmd' runs in a throw-away tmux session there.")
    ex.add_argument("dsl", nargs="+", help="recipe lines (several arguments are several lines)")
    _run_options(ex)

    tr = sub.add_parser("transfer", help="copy files between two places",
                        description="Copy SRC to DST: local paths or @HOST:PATH (a hosts.toml "
                                    "name); rsync semantics for folders.")
    tr.add_argument("src", help="what to copy: a local path, @HOST:PATH or @STORAGE:PATH")
    tr.add_argument("dst", help="where to: a local path, @HOST:PATH or @STORAGE:PATH")
    tr.add_argument("--delete", action="store_true", help="delete files in DST that SRC lacks")
    tr.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                    help="skip files matching PATTERN (rsync rules; repeatable)")
    tr.add_argument("--dry-run", action="store_true", help="show what would be copied")
    ho = sub.add_parser("host", help="named ssh machines (hosts.toml)",
                        description="Named ssh machines, kept in hosts.toml; recipes use them as "
                                    "'host gpu = NAME'.")
    hs = ho.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    hs.add_parser("list", help="the hosts in hosts.toml")
    ha = hs.add_parser("add", help="add a host (asks on a terminal when arguments are missing)")
    ha.add_argument("name", nargs="?", help="the host's name, for recipes and other commands")
    ha.add_argument("destination", nargs="?", metavar="USER@HOST", help="ssh login and address")
    ha.add_argument("-p", "--port", help="ssh port (default 22)")
    ha.add_argument("-i", "--key", help="identity file")
    ha.add_argument("-J", "--jump", help="jump host")
    ha.add_argument("--force", action="store_true", help="replace a host of the same name")
    for verb, text in (("show", "a host's settings and its ssh command line"),
                       ("ssh", "an interactive shell on the host"),
                       ("test", "reachable? auth, latency, tools, GPUs, disk, in one go"),
                       ("remove", "remove a host from hosts.toml")):
        hp = hs.add_parser(verb, help=text)
        hp.add_argument("name", help="a host name from hosts.toml")
        if verb == "test":
            hp.add_argument("--accept-new", action="store_true",
                            help="accept and keep the host's key if none is known for it yet "
                                 "(ssh's StrictHostKeyChecking=accept-new, for this test)")
    hb = hs.add_parser("browse", help="list a remote folder; on a terminal move around and fetch files")
    hb.add_argument("name", help="a host name from hosts.toml")
    hb.add_argument("path", nargs="?", help="the folder to list (default: the home folder)")

    so = sub.add_parser("storage", help="object stores and folders (storages.toml)",
                        description="Storage backends, kept in storages.toml (credentials are "
                                    "secrets, never stored there); recipes use them as "
                                    "'storage out = NAME' or 'r2:bucket'.")
    sos = so.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    sos.add_parser("list", help="the storages in storages.toml")
    sa = sos.add_parser("add", help="add a storage (asks on a terminal when arguments are missing)")
    sa.add_argument("name", nargs="?", help="the storage's name, for recipes and other commands")
    sa.add_argument("spec", nargs="?", metavar="KIND:BUCKET",
                    help="r2:bucket, b2:bucket, s3:bucket, gdrive:folder or local:/path")
    sa.add_argument("--endpoint", help="an S3-compatible endpoint URL")
    sa.add_argument("--region", help="the store's region, where it needs one")
    sa.add_argument("--account-id", help="the Cloudflare account id (R2)")
    sa.add_argument("--force", action="store_true", help="replace a storage of the same name")
    for verb, text in (("show", "a storage's settings and the secrets it needs"),
                       ("test", "list it, then write, read back and delete a small object"),
                       ("remove", "remove a storage from storages.toml")):
        sp = sos.add_parser(verb, help=text)
        sp.add_argument("name", help="a storage name from storages.toml")

    se = sub.add_parser("secrets", help="API keys and tokens (environment first, then the store)",
                        description="Secrets are looked up in the environment first, then in the "
                                    "store: the OS keyring where one works, else an encrypted file "
                                    "(passphrase from TRAINSH_PASSPHRASE or asked once per run).")
    ss = se.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    ss.add_parser("list", help="known keys and where each value comes from (never the value)")
    sset = ss.add_parser("set", help="store a secret (asked without echo; or read from stdin)")
    sset.add_argument("key", help="the secret's name, like HF_TOKEN")
    sget = ss.add_parser("get", help="print a secret's value")
    sget.add_argument("key", help="the secret's name")
    sdel = ss.add_parser("delete", help="remove a secret from the store")
    sdel.add_argument("key", help="the secret's name")

    co = sub.add_parser("config", help="settings in config.toml",
                        description="Typed settings in config.toml; edits keep its comments.")
    cs = co.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    cs.add_parser("show", help="every key with its value and whether it is the default")
    cg = cs.add_parser("get", help="one key's value")
    cg.add_argument("key", help="a key like defaults.command_timeout (config show lists them)")
    cst = cs.add_parser("set", help="set a key (checked against its type)")
    cst.add_argument("key", help="a key like defaults.command_timeout (config show lists them)")
    cst.add_argument("value", help="the new value, checked against the key's type")
    cu = cs.add_parser("unset", help="remove a key from config.toml (back to its default)")
    cu.add_argument("key", help="a key like defaults.command_timeout")
    cr = cs.add_parser("reset", help="back to the defaults (the old config.toml kept as a "
                       "numbered backup, config.toml.bak[.N])")
    cr.add_argument("--yes", action="store_true", help="do not ask")

    cb = sub.add_parser("colab", help="Google Colab notebooks as ssh hosts (colab:NAME)",
                        description="A Colab notebook runs an ssh server behind a cloudflared or "
                                    "ngrok tunnel; connect keeps its address in hosts.toml and its "
                                    "password as a secret. Recipes use it as 'host gpu = colab:NAME'.")
    cbs = cb.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    cc = cbs.add_parser("connect", help="add or update a Colab host (prints the notebook cell to run)")
    cc.add_argument("name", nargs="?", help="a name for it (default: colab)")
    cc.add_argument("--address", help="what the notebook printed: xyz.trycloudflare.com or host:port")
    cc.add_argument("--user", help="the login user (default: root)")
    cc.add_argument("--cell", action="store_true", help="only print the notebook cell")
    cbs.add_parser("list", help="Colab hosts: tunnel, address, reachable or not, last seen")
    csh = cbs.add_parser("ssh", help="an interactive shell on a Colab host")
    csh.add_argument("name", nargs="?", help="the Colab host (default: the only one)")
    crn = cbs.add_parser("run", help="run a command on a Colab host; its exit code is train's",
                         description="train colab run [NAME] CMD... (NAME may be left out when "
                                     "there is one Colab host)")
    crn.add_argument("command", nargs=argparse.REMAINDER, metavar="[NAME] CMD",
                     help="the host (optional) and the command line")

    pr = sub.add_parser("pricing", help="exchange rates, display currency, Colab and cloud costs",
                        description="Costs in your display currency (ui.currency) with USD beside "
                                    "them. Rates are fetched from pricing.rates_url, cached for a "
                                    "day, and fall back to a dated built-in table offline.")
    ps = pr.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    prr = ps.add_parser("rates", help="exchange rates for 1 USD, and where they come from")
    prr.add_argument("--refresh", action="store_true", help="fetch now, whatever the cache's age")
    prr.add_argument("--json", action="store_true", help="machine-readable output")
    pc = ps.add_parser("currency", help="show or set the display currency (ui.currency)")
    pc.add_argument("--set", metavar="CODE", help="a currency code such as CNY, EUR, JPY")
    pv = ps.add_parser("convert", help="convert an amount: convert 10 USD CNY")
    pv.add_argument("amount", help="the amount, e.g. 10 or 12.5")
    pv.add_argument("src", metavar="FROM", help="currency code to convert from")
    pv.add_argument("dst", metavar="TO", help="currency code to convert to")
    ps.add_parser("colab", help="Colab plans and the cost of each GPU per hour")
    ps.add_parser("vast", help="your Vast.ai instances' costs, and the cheapest offers")
    ps.add_parser("runpod", help="your RunPod pods' costs, and the cheapest GPU types")
    _cloud_parsers(sub)
    _pick_parser(sub)
    _slurm_parser(sub)

    cm = sub.add_parser("completion", help="shell completion script for bash, zsh or fish",
                        description="Print a completion script (for train and ow). bash: eval "
                                    "\"$(train completion bash)\"; zsh: source <(train completion "
                                    "zsh); fish: train completion fish | source")
    cm.add_argument("shell", help="bash, zsh or fish")
    return p


def _cloud_names(text: str) -> tuple[str, ...]:
    """`--clouds vast,runpod`, checked as the recipe's `clouds=` is."""
    from trainsh.recipe.model import cloud_names  # (only when the flag is given: start-up)

    try:
        return cloud_names(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _pick_parser(sub) -> None:
    pk = sub.add_parser("pick", help="compare matching offers over every cloud, cheapest per GPU hour",
                        description="The offers a recipe's 'pick @HOST' compares, cheapest per GPU "
                                    "hour first, over every cloud with an API key (or those --clouds "
                                    "names); nothing is rented. GPU names in any common spelling "
                                    "(RTX_4090, RTX4090, 'NVIDIA GeForce RTX 4090'); GPU RAM is per GPU, in GB.")
    pk.add_argument("--gpu", help="GPU model, e.g. RTX_4090, A100S or H100S (default: any)")
    pk.add_argument("--num-gpus", type=numbers.GPUS, default=1, metavar="N", help="at least N GPUs (default 1)")
    pk.add_argument("--min-gpu-ram", type=numbers.GPU_RAM_GB, metavar="GB", help="at least this much RAM per GPU")
    pk.add_argument("--max-dph", type=numbers.USD_PER_HOUR, metavar="USD",
                    help="at most this many dollars per hour for the machine")
    pk.add_argument("--clouds", type=_cloud_names, metavar="NAMES",
                    help="the clouds to compare, e.g. vast,runpod (default: every cloud with an API key)")
    pk.add_argument("--limit", type=numbers.LIMIT, default=10, help="at most this many offers from each cloud (default 10)")
    pk.add_argument("--json", action="store_true",
                    help="machine-readable output: one object per offer (cloud, id, gpu, num_gpus, $/h, $/GPU/h)")


def _slurm_parser(sub) -> None:
    sl = sub.add_parser("slurm", help="Slurm clusters: partitions and nodes, your jobs, cancel",
                        description="Slurm clusters, reached through their login host (local, an "
                                    "ssh spec, a hosts.toml name). Recipes allocate with "
                                    "'slurm.alloc @login as NAME' or --host NAME=slurm:LOGIN?nodes=2.")
    s = sl.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    si = s.add_parser("info", help="partitions: state, time limit, allocated and idle nodes, GPUs")
    si.add_argument("host", help="the cluster's login host")
    sq = s.add_parser("queue", help="your jobs on the cluster, with the trainsh job that made each")
    sq.add_argument("host", help="the cluster's login host")
    sc = s.add_parser("cancel", help="cancel a Slurm job (scancel), e.g. an allocation a job kept")
    sc.add_argument("host", help="the cluster's login host")
    sc.add_argument("jobid", help="the Slurm job id (train slurm queue shows them)")


# name -> (how the group names the cloud, what it calls a machine, the group's help, where its
# key and server come from). Every verb speaks the Provider interface (cli/cloud.py), so a cloud
# is one more entry; what one cloud adds is in EXTRA_VERBS.
CLOUDS = {
    "vast": ("Vast.ai", "instance", "Vast.ai machines: search, rent, start, stop, ssh",
             "The key is the secret VAST_API_KEY (train secrets set VAST_API_KEY)."),
    "runpod": ("RunPod", "pod", "RunPod pods: search, rent, start, stop, ssh, GPU types",
               "Key: the RUNPOD_API_KEY secret; server: RUNPOD_API_BASE_URL (default "
               "https://api.runpod.io)."),
}


def _cloud_parsers(sub) -> None:
    """One command group per cloud, all the same shape."""
    for name, (title, noun, text, key) in CLOUDS.items():
        a = "an" if noun[0] in "aeiou" else "a"
        ident = f"the {noun} id (train {name} list shows them)"
        an_id = numbers.IDS[name]  # (bad ids are one line, before the cloud is asked)
        p = sub.add_parser(name, help=text,
                           description=f"{title} machines: search the market, rent, list, start, "
                                       f"stop, destroy, ssh. {key}")
        s = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
        ls = s.add_parser("list", help=f"your {noun}s: status, GPU, $/h, uptime, cost so far, ssh")
        ls.add_argument("--json", action="store_true", help="machine-readable output")
        sh = s.add_parser("show", help=f"one {noun} in full")
        sh.add_argument("id", type=an_id, metavar="ID", help=ident)
        sh.add_argument("--json", action="store_true", help="machine-readable output (with the API's own fields)")
        ss = s.add_parser("ssh", help=f"an interactive shell on {a} {noun} (or run COMMAND)")
        ss.add_argument("id", type=an_id, metavar="ID", help=ident)
        ss.add_argument("command", nargs=argparse.REMAINDER, help="run this instead of a shell")
        for verb, what in (("start", f"start a stopped {noun}"),
                           ("stop", f"stop {a} {noun} (its disk stays, and bills storage)"),
                           ("reboot", f"restart {a} {noun}'s container")):
            v = s.add_parser(verb, help=what)
            v.add_argument("id", type=an_id, metavar="ID", help=ident)
            if verb == "start":
                v.add_argument("--wait", action="store_true", help="wait until an ssh login works")
        ds = s.add_parser("destroy", help=f"destroy {a} {noun} and its disk (asks first)")
        ds.add_argument("id", type=an_id, metavar="ID", help=ident)
        ds.add_argument("--yes", action="store_true", help="do not ask")
        pr = s.add_parser("prune", help=f"destroy the stopped {noun}s trainsh rented that no job holds (asks first)",
                          description=f"Destroy every stopped {noun} trainsh rented (a trainsh-... or ow-... "
                                      f"label, or a rent trainsh made) that no running or resumable job, "
                                      f"and no ow, holds: their disks bill while they are stopped. Lists "
                                      f"them with what each bills an hour, then asks.")
        pr.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
        gpu_names = ("GPU names use _ for spaces (RTX_4090)" if name == "vast" else
                     f"GPUs by short name (L40, RTX4090, A100S: train {name} gpus), type id or display name")
        se = s.add_parser("search", help="market offers that match, cheapest first",
                          description=f"Market offers that match, cheapest first. {gpu_names}; "
                                      "GPU RAM is per GPU, in GB.")
        se.add_argument("--gpu", help="GPU model, e.g. RTX_4090 or A100_SXM4" if name == "vast" else
                        "GPU, e.g. L40, RTX4090 or 'NVIDIA A100-SXM4-80GB'")
        se.add_argument("--num-gpus", type=numbers.GPUS, default=1, metavar="N", help="at least N GPUs (default 1)")
        se.add_argument("--min-gpu-ram", type=numbers.GPU_RAM_GB, metavar="GB", help="at least this much RAM per GPU")
        se.add_argument("--max-dph", type=numbers.USD_PER_HOUR, metavar="USD", help="at most this many dollars per hour (the machine with the disk a create asks for; with --interruptible, the bid)")
        se.add_argument("--limit", type=numbers.LIMIT, default=20, help="at most this many offers (default 20)")
        se.add_argument("--json", action="store_true", help="machine-readable output")
        spot = "--interruptible" if name == "vast" else "--spot"
        se.add_argument(spot, dest="interruptible", action="store_true",
                        help="offers to rent on a bid: each with its minimum bid beside its on-demand "
                             "price, cheapest bid first (--max-dph caps the bid)")
        s.add_parser("keys", help="the ssh public keys on your account")
        ak = s.add_parser("attach-key", help="upload an ssh public key to your account",
                          description=f"Upload the public half of the ssh.key identity (config), or "
                                      f"of PATH, to your account; new {noun}s accept it.")
        ak.add_argument("path", nargs="?", help="a public key (.pub) or its private key")
        ak.add_argument("--instance", metavar="ID", type=an_id, help=f"also attach it to this running {noun}")
        cr = s.add_parser("create", help="rent a machine from an offer (see search)")
        cr.add_argument("offer", metavar="OFFER_ID", type=numbers.OFFERS.get(name, str),
                        help="an offer id from search")
        cr.add_argument("--image", help=f"docker image (default: config {name}.image)")
        cr.add_argument("--disk", type=numbers.DISK_GB, metavar="GB", help=f"disk size (default: config {name}.disk)")
        cr.add_argument("--label", help=f"a name for the {noun}")
        if name == "runpod":  # (a Vast.ai offer is one machine with its own GPUs)
            cr.add_argument("--num-gpus", type=numbers.GPUS, metavar="N",
                            help="GPUs in the pod (default: the offer's, as search lists it, else 1)")
            cr.add_argument("--spot", action="store_true",
                            help="a spot pod: cheaper, but RunPod may stop it to free its GPUs")
            cr.add_argument("--bid", type=numbers.BID, metavar="PRICE_PER_GPU",
                            help="with --spot: the bid per GPU, USD/h (default: the minimum bid plus "
                                 "config runpod.bid_margin, 10%%)")
        else:
            cr.add_argument("--bid", type=numbers.BID, nargs="?", const=0.0, metavar="PRICE",
                            help="rent it interruptible at this bid, USD/h for the machine (no PRICE: "
                                 "the offer's minimum bid plus config vast.bid_margin, 10%%); a "
                                 "higher bid pauses it")
        if name in EXTRA_VERBS:
            EXTRA_VERBS[name](s)


def _runpod_verbs(s) -> None:
    gp = s.add_parser("gpus", help="GPU types with memory and prices")
    gp.add_argument("--count", type=numbers.GPUS, default=1, help="GPUs per pod, for the price (default 1)")
    gp.add_argument("--json", action="store_true", help="machine-readable output")


def _vast_verbs(s) -> None:
    bd = s.add_parser("bid", help="change the bid of an interruptible instance",
                      description="Set an interruptible instance's bid (USD/h for the machine); a "
                                  "paused (outbid) one resumes once its bid wins again.")
    bd.add_argument("id", type=numbers.IDS["vast"], metavar="ID", help="the instance id (train vast list shows them)")
    bd.add_argument("price", type=numbers.BID, metavar="PRICE", help="the new bid, USD/h")


# name -> what that cloud adds to the common verbs (its handlers: cli/NAME.py, cmd_VERB)
EXTRA_VERBS = {"runpod": _runpod_verbs, "vast": _vast_verbs}


def _spec_options(p: argparse.ArgumentParser) -> None:
    """What a run is given: `run`, `exec` and `check` take the same."""
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="set a recipe variable (repeatable)")
    p.add_argument("--host", action="append", default=[], metavar="NAME=SPEC",
                   help="give a host a spec at run time (repeatable)")
    p.add_argument("--storage", action="append", default=[], metavar="NAME=SPEC",
                   help="give a storage a spec at run time, e.g. out=r2:bucket (repeatable)")


def _run_options(p: argparse.ArgumentParser) -> None:
    _spec_options(p)
    p.add_argument("--no-visual", action="store_true", help="plain line-by-line output (no live view)")
    p.add_argument("--keep-sessions", action="store_true",
                   help="keep the job's tmux sessions when it fails")
    p.add_argument("--keep-hosts", action="store_true",
                   help="keep the machines the job rented, started or allocated when it fails "
                        "(train exec: also when it ends)")
    p.add_argument("--autostop", metavar="DURATION",
                   help="stop a cloud machine the job rented or started once it has been idle, "
                        "with no train connected, this long (default: config cloud.autostop, "
                        "30m; 0 = never)")
    p.add_argument("--recover", metavar="N", type=numbers.count(0, 99),
                   help="survive losing a picked cloud machine up to N times (outbid, reclaimed, "
                        "stopped or gone): a new one, and that host's steps again; for every pick "
                        "that sets no recover= of its own")
    p.add_argument("--pick-host", metavar="NAME",
                   help="choose the Vast.ai machine for host NAME now, before the run starts")


def subcommands(parser: argparse.ArgumentParser, group: str) -> list[str]:
    def choices(p) -> dict:
        return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices

    return list(choices(choices(parser)[group]))
