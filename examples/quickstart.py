"""quickstart.recipe as a Python recipe: the same steps on this machine alone.

Run it:  train recipe run examples/quickstart.py --var epochs=5   (or: python examples/quickstart.py)
A "training" script runs in one tmux session, a file server in another; the program waits for
a pattern, a file, an idle session and an open port, backs up the checkpoints and sends a
notification. Each call is a step of the job: `train recipe resume` replays what finished.
"""

import trainsh as ts

TRAIN_PY = """\
import pathlib, sys, time
epochs = int(sys.argv[1])
for epoch in range(1, epochs + 1):
    time.sleep(0.3)
    pathlib.Path(f"checkpoints/epoch{epoch}.pt").write_text(f"weights after epoch {epoch}\\n")
    print(f"epoch {epoch}/{epochs} loss={1 / epoch:.3f}", flush=True)
pathlib.Path("DONE").touch()
"""


def main(job: ts.Job, work: str = "/tmp/trainsh-quickstart", epochs: int = 3, port: int = 8765):
    gpu = job.host("local", name="gpu")
    train = gpu.open("train")
    serve = gpu.open("serve")

    train.run(f"rm -rf {work} && mkdir -p {work}/checkpoints && cd {work}")
    train.run(f"cat > train.py <<'EOF'\n{TRAIN_PY}EOF")

    # Training runs in the background; the program goes on and waits for what it needs.
    train.run(f"python3 train.py {epochs}", background=True)
    train.wait(r"epoch 1/\d+ loss=", timeout="1m")
    train.wait(file=f"{work}/DONE", timeout="5m")
    train.wait(idle=True, timeout="5m")

    # Serve the checkpoints on loopback and wait until the port is open.
    serve.run(f"cd {work} && python3 -m http.server {port} --bind 127.0.0.1", background=True)
    serve.wait(port=port, timeout="30s")
    r = train.run(f"python3 -c \"import urllib.request as u; "
                  f"print(u.urlopen('http://127.0.0.1:{port}/checkpoints/').status)\"")
    if r.output.strip() != "200":
        raise RuntimeError(f"the file server answered {r.output!r}")

    # Back up the checkpoints (rsync between local paths).
    job.copy(f"{work}/checkpoints/", f"{work}/backup/checkpoints/")
    train.run(f"ls {work}/backup/checkpoints")

    job.notify(f"quickstart: trained {epochs} epochs, checkpoints backed up in {work}/backup")
    serve.close()
    train.close()


ts.main(main)
