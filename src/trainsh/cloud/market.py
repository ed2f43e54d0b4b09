"""One market over several clouds: every matching offer, cheapest per GPU hour first, and the
clouds left out with why. The `pick` recipe step (runtime/pick.py) rents from it and `train
pick` shows it. It speaks only the `Provider` interface, so a cloud joins by its name.

Offers compare per GPU hour, not per machine hour: asked for 2 GPUs, a 4-GPU machine at $1.20/h
($0.30/GPU/h) beats a 2-GPU one at $0.80/h ($0.40/GPU/h), as the work per dollar is what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainsh.cloud.provider import Offer, Provider, ProviderError
from trainsh.cloud.provider import provider as cloud_provider


@dataclass(frozen=True)
class Want:
    """What a machine must have, as `pick` and `train pick` take it."""

    gpu: str | None = None
    num_gpus: int = 1
    min_gpu_ram: float | None = None  # GB per GPU
    max_dph: float | None = None      # USD an hour for the whole machine
    limit: int = 10                   # offers asked of each cloud

    def words(self) -> str:
        """As the recipe writes it (for messages): `gpu=RTX_4090 num_gpus=2`."""
        parts = [("gpu", self.gpu), ("num_gpus", self.num_gpus),
                 ("min_gpu_ram", self.min_gpu_ram), ("max_dph", self.max_dph)]
        return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in parts if v is not None) or "any machine"


def per_gpu(item) -> float:
    """An offer's (or instance's) USD per GPU hour."""
    return item.price_per_hour / max(int(item.num_gpus or 0), 1)


def ranked(items: list) -> list:
    """Cheapest per GPU hour first; for the same, the cheaper machine."""
    return sorted(items, key=lambda o: (per_gpu(o), o.price_per_hour))


def row(o: Offer) -> dict:
    """An offer as `train pick --json` shows it."""
    return {"cloud": o.provider, "id": o.id, "gpu": o.gpu_name, "num_gpus": o.num_gpus,
            "$/h": round(o.price_per_hour, 4), "$/GPU/h": round(per_gpu(o), 4)}


@dataclass
class Comparison:
    clouds: dict[str, Provider]                      # the clouds that answered, by name
    offers: list[Offer] = field(default_factory=list)  # every cloud's, ranked
    own: list = field(default_factory=list)           # what `look` found of the user's own
    notes: list[str] = field(default_factory=list)    # clouds left out, and why

    def cheapest(self) -> dict[str, Offer]:
        """Each cloud's cheapest offer per GPU hour."""
        best: dict[str, Offer] = {}
        for o in self.offers:
            best.setdefault(o.provider, o)
        return best


def providers(named: tuple[str, ...] | None, known: tuple[str, ...]) -> tuple[dict[str, Provider], list[str]]:
    """The clouds to compare: those `named`, each of which must have an API key (ProviderError
    naming the first without), else every `known` cloud that has one, with a note for each left
    out."""
    chosen, notes = {}, []
    for name in named or known:
        p = cloud_provider(name)
        problem = p.key_problem()
        if problem and named:
            raise ProviderError(problem)
        if problem:
            notes.append(f"{name} left out: {problem}")
        else:
            chosen[name] = p
    if not chosen:
        raise ProviderError("no cloud to pick from: " + "; ".join(notes))
    return chosen, notes


def compare(named: tuple[str, ...] | None, known: tuple[str, ...], want: Want, look=None) -> Comparison:
    """Every matching offer of the clouds `named` (else of every `known` cloud with a key),
    cheapest per GPU hour first. `look(provider)` gives (own instances, offers) for one cloud
    (default: no instances, the cloud's search); a cloud whose look fails is a note, and when
    none answers that is the ProviderError."""
    clouds, notes = providers(named, known)
    if look is None:
        def look(p):
            return [], search(p, want)
    found = Comparison({}, notes=notes)
    for name, p in clouds.items():
        try:
            own, offers = look(p)
        except ProviderError as e:
            found.notes.append(f"{name} left out: {e}")
            continue
        found.clouds[name] = p
        found.own += own
        found.offers += offers
    if not found.clouds:
        raise ProviderError("; ".join(found.notes))
    found.offers = ranked(found.offers)
    return found


def search(p: Provider, want: Want) -> list[Offer]:
    return p.search(gpu=want.gpu, num_gpus=want.num_gpus, min_gpu_ram_gb=want.min_gpu_ram,
                    max_price=want.max_dph, limit=want.limit)
