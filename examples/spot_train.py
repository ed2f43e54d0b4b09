"""A stand-in for a training script, as examples/spot.recipe runs it on a machine that may be
taken away: a checkpoint per epoch in --ckpt, pushed to storage by --push as training goes, and
a start from the last checkpoint found in --ckpt (which the recipe brings down from storage
first, so a replacement machine goes on where the lost one last pushed).

    python3 spot_train.py --ckpt /workspace/ckpt --epochs 20 --push "rclone copy /workspace/ckpt out:bucket/run/ckpt"

history.log beside the checkpoints says which machine trained each epoch; it travels with them.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--ckpt", required=True, help="the checkpoint folder")
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--seconds", type=float, default=1.0, help="how long an epoch takes here")
p.add_argument("--push", default="", help="a shell command run after each checkpoint (a copy to storage)")
a = p.parse_args()

os.makedirs(a.ckpt, exist_ok=True)
done = sorted(int(n[6:-5]) for n in os.listdir(a.ckpt) if n.startswith("epoch-") and n.endswith(".json"))
state = {"epoch": 0, "loss": 1.0}
if done:
    with open(os.path.join(a.ckpt, f"epoch-{done[-1]}.json")) as f:
        state = json.load(f)
    print(f"resuming from the checkpoint of epoch {state['epoch']}", flush=True)
else:
    print("no checkpoint: a fresh start", flush=True)
me = os.environ.get("CONTAINER_ID") or os.environ.get("RUNPOD_POD_ID") or socket.gethostname()
for epoch in range(state["epoch"] + 1, a.epochs + 1):
    time.sleep(a.seconds)  # the work of an epoch
    state = {"epoch": epoch, "loss": round(state["loss"] * 0.9, 6)}
    path = os.path.join(a.ckpt, f"epoch-{epoch}.json")
    with open(path + ".tmp", "w") as f:  # written aside, then renamed: a machine that goes
        json.dump(state, f)              # mid-write leaves no half checkpoint
    os.replace(path + ".tmp", path)
    with open(os.path.join(a.ckpt, "history.log"), "a") as f:
        f.write(f"{epoch} {me}\n")
    print(f"epoch {epoch}/{a.epochs} loss={state['loss']}", flush=True)
    if a.push and subprocess.run(a.push, shell=True).returncode != 0:
        sys.exit(f"pushing the checkpoint of epoch {epoch} failed")  # training on unsaved is money lost
print("training done", flush=True)
