"""A small, seeded world of coloured shapes in images and videos, written as real WebDataset shards.

The quickstart trains on it and the tests use tiny versions. Images hold 1-3 shapes (distinct colours and
shapes, so every question has one answer); videos hold one shape that moves left/right/up/down or changes
colour. Stage 1 is captioning; stage 2 is multi-turn questions with one-word answers, scored by exact
match. The sample layout and the ``meta`` fields are described in docs/data-format.md.

Everything is a function of ``(seed, split, index)``: the same seed writes byte-identical files (shards with their
jpg, png and mp4 members, corpus and manifest; :func:`lvlm.data.decoding.encoding.encode_mp4` is deterministic).
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lvlm.data.decoding.encoding import encode_mp4
from lvlm.data.shards import ShardWriter, encode_json
from lvlm.data.synthetic_render import COLORS, render_image, render_video

SHAPES = ("circle", "square", "triangle", "diamond")
DIRECTIONS = ("left", "right", "up", "down")
COUNTS = ("one", "two", "three")
EVENTS = ("move", "change")
CHOICES = {
    "color": list(COLORS),
    "shape": list(SHAPES),
    "count": list(COUNTS),
    "exists": ["yes", "no"],
    "direction": list(DIRECTIONS),
    "event": list(EVENTS),
}
IMAGE_QUESTIONS = ("color", "shape", "count", "exists")
VIDEO_QUESTIONS = ("direction", "shape", "color", "event")
TEXT_FACTS = [
    ("What is the opposite of left?", "right"),
    ("What is the opposite of up?", "down"),
    ("How many sides does a triangle have?", "three"),
    ("How many sides does a square have?", "four"),
    ("Is a circle round?", "yes"),
    ("Is a square round?", "no"),
    ("Which colour do you get from red and blue?", "purple"),
    ("Name a colour of the sky.", "blue"),
]
SPLITS = ("stage1/train", "stage2/train", "stage2/val", "stage2/test")


@dataclass(frozen=True)
class WorldSizes:
    """How big the world is. Defaults are the quickstart's (about 4,600 samples, ~20 s to write on one core)."""

    stage1_train: int = 2000
    stage2_train: int = 2000
    stage2_val: int = 200
    stage2_test: int = 400
    image_size: int = 64
    video_frames: int = 8
    video_fraction: float = 0.5
    text_fraction: float = 0.05  # stage 2 train only: text-only samples, no media
    samples_per_shard: int = 500


@dataclass
class SyntheticWorld:
    """What :func:`write_synthetic_world` wrote.

    Attributes:
        root: The output folder.
        shards: Shard paths per split: ``"stage1/train"``, ``"stage2/train"``, ``"stage2/val"``, ``"stage2/test"``.
        counts: Samples per split.
        corpus_path: ``corpus.txt``: every text of the world, one per line (for training a tokenizer).
        seed: The seed.
        sizes: The sizes used.
    """

    root: Path
    shards: dict[str, list[Path]]
    counts: dict[str, int]
    corpus_path: Path
    seed: int
    sizes: WorldSizes = field(default_factory=WorldSizes)

    def pattern(self, split: str) -> str:
        """A WebDataset brace pattern for a split, e.g. ``root/stage2/train-{000000..000003}.tar``."""
        paths = self.shards[split]
        if len(paths) == 1:
            return str(paths[0])
        stem = str(paths[0])[: -len("000000.tar")]
        return f"{stem}{{000000..{len(paths) - 1:06d}}}.tar"


def _sizes(sizes: WorldSizes | dict[str, Any] | None) -> WorldSizes:
    if sizes is None or isinstance(sizes, WorldSizes):
        return sizes or WorldSizes()
    unknown = set(sizes) - {f.name for f in fields(WorldSizes)}
    if unknown:
        raise ValueError(f"unknown world size fields {sorted(unknown)}; known: {[f.name for f in fields(WorldSizes)]}")
    return WorldSizes(**sizes)


def _count(sizes: WorldSizes, split: str) -> int:
    return getattr(sizes, split.replace("/", "_"))


# ----------------------------------------------------------------------------------------- scenes and texts
def sample_scene(rng: random.Random, split: str, sizes: WorldSizes) -> dict[str, Any]:
    """Draw one scene: ``{"modality": "image"|"video"|"text", ...}`` with objects, motion and colours."""
    text_weight = sizes.text_fraction if split == "stage2/train" else 0.0
    media_weight = 1.0 - text_weight
    modality = rng.choices(
        ["text", "video", "image"],
        [text_weight, media_weight * sizes.video_fraction, media_weight * (1 - sizes.video_fraction)],
    )[0]
    if modality == "text":
        return {"modality": "text", "facts": rng.sample(range(len(TEXT_FACTS)), 2)}
    if modality == "image":
        n = rng.randint(1, 3)
        objects = list(zip(rng.sample(list(COLORS), n), rng.sample(SHAPES, n)))
        cells = rng.sample(range(9), n)  # a 3x3 grid keeps shapes apart
        return {"modality": "image", "objects": [[c, s, cell] for (c, s), cell in zip(objects, cells)]}
    color, end_color = rng.sample(list(COLORS), 2)
    event = "move" if rng.random() < 0.75 else "change"
    return {
        "modality": "video",
        "shape": rng.choice(SHAPES),
        "color": color,
        "event": event,
        "direction": rng.choice(DIRECTIONS) if event == "move" else None,
        "end_color": end_color if event == "change" else color,
        "offset": rng.uniform(0.3, 0.7),  # position across the motion, as a fraction of the frame
    }


def caption(scene: dict[str, Any]) -> str:
    """A short caption: ``"a red circle and a blue square"``, ``"a green triangle moving left"``."""
    if scene["modality"] == "image":
        names = [f"a {c} {s}" for c, s, _ in scene["objects"]]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    if scene["event"] == "move":
        return f"a {scene['color']} {scene['shape']} moving {scene['direction']}"
    return f"a {scene['color']} {scene['shape']} turning {scene['end_color']}"


def questions(scene: dict[str, Any], rng: random.Random) -> list[tuple[str, str, str]]:
    """2-4 ``(question_type, question, answer)`` triples about a scene, in random order.

    An image gets up to three questions that bind an attribute to an object (the colour of a named shape, the
    shape of a named colour; one object may be asked about twice) and one of count / "is there a ...": the
    binding questions are the hard ones for a small LLM, and asking several per image is what lets the
    quickstart learn them in minutes (one per image left image colour at 0.62-0.80 after 500-1500 steps).
    """
    if scene["modality"] == "text":
        return [("text", *TEXT_FACTS[i]) for i in scene["facts"]]
    if scene["modality"] == "image":
        binding = [("color", f"What color is the {s}?", c) for c, s, _ in scene["objects"]]
        binding += [("shape", f"What shape is the {c} object?", s) for c, s, _ in scene["objects"]]
        color, shape, _ = rng.choice(scene["objects"])
        present = {(c, s) for c, s, _ in scene["objects"]}
        ask = (color, shape) if rng.random() < 0.5 else (rng.choice(list(COLORS)), rng.choice(SHAPES))
        scene_level = [
            ("count", "How many shapes are there?", COUNTS[len(scene["objects"]) - 1]),
            ("exists", f"Is there a {ask[0]} {ask[1]}?", "yes" if ask in present else "no"),
        ]
        chosen = [*rng.sample(binding, min(3, len(binding))), rng.choice(scene_level)]
        rng.shuffle(chosen)
        return chosen
    shape = scene["shape"]
    pool = {
        "shape": ("What shape is in the video?", shape),
        "event": (f"Does the {shape} move or change color?", scene["event"]),
    }
    if scene["event"] == "move":
        pool["direction"] = (f"Which way does the {shape} move?", scene["direction"])
        pool["color"] = (f"What color is the {shape}?", scene["color"])
    else:
        pool["color"] = (f"What color does the {shape} turn?", scene["end_color"])
    chosen = rng.sample(sorted(pool), rng.randint(2, 3))
    return [(qtype, *pool[qtype]) for qtype in chosen]


# --------------------------------------------------------------------------------------------------- samples
def build_sample(seed: int, split: str, index: int, sizes: WorldSizes, *, render: bool = True) -> dict[str, Any]:
    """Sample ``index`` of ``split``: ``{"__key__", "json": dict, <media member>: bytes}`` (no media if not render)."""
    rng = random.Random(f"{seed}/{split}/{index}")
    scene = sample_scene(rng, split, sizes)
    modality = scene["modality"]
    placeholder = "" if modality == "text" else f"<{modality}>\n"
    if split.startswith("stage1"):
        prompt = rng.choice([f"Describe the {modality} briefly.", f"What is in the {modality}?"])
        turns = [("human", placeholder + prompt), ("gpt", caption(scene))]
        meta: dict[str, Any] = {"modality": modality, "caption": caption(scene)}
    else:
        qas = questions(scene, rng)
        turns = []
        for i, (_, question, answer) in enumerate(qas):
            turns += [("human", (placeholder if i == 0 else "") + question), ("gpt", answer)]
        meta = {
            "modality": modality,
            "question_types": [q for q, _, _ in qas],
            "answers": [a for _, _, a in qas],
            "choices": {q: CHOICES[q] for q, _, _ in qas if q in CHOICES},
        }
    meta["scene"] = scene
    key = f"{split.replace('/', '-')}-{index:06d}"
    sample: dict[str, Any] = {
        "__key__": key,
        "json": {"conversations": [{"from": f, "value": v} for f, v in turns], "meta": meta},
    }
    if render and modality == "image":
        buffer = io.BytesIO()
        fmt = "png" if rng.random() < 0.2 else "jpg"
        render_image(scene, sizes.image_size).save(buffer, format="PNG" if fmt == "png" else "JPEG", quality=92)
        sample[fmt] = buffer.getvalue()
    elif render and modality == "video":
        sample["mp4"] = encode_mp4(
            render_video(scene, sizes.image_size, sizes.video_frames), fps=8, gop=sizes.video_frames
        )
    return sample


def _texts(sample: dict[str, Any]) -> list[str]:
    return [t["value"].replace("<image>\n", "").replace("<video>\n", "") for t in sample["json"]["conversations"]]


def corpus_texts(seed: int = 0, sizes: WorldSizes | dict[str, Any] | None = None) -> list[str]:
    """Every text of the world with ``seed`` and ``sizes`` (placeholders removed), plus every answer word.

    Cheap: no media is rendered. This is what ``corpus.txt`` holds, for training a tiny tokenizer.
    """
    sizes = _sizes(sizes)
    texts = [" ".join(choices) for choices in CHOICES.values()] + [f"{q} {a}" for q, a in TEXT_FACTS]
    for split in SPLITS:
        for i in range(_count(sizes, split)):
            texts += _texts(build_sample(seed, split, i, sizes, render=False))
    return texts


def write_synthetic_world(
    out_dir: str | Path, *, seed: int = 0, sizes: WorldSizes | dict[str, Any] | None = None
) -> SyntheticWorld:
    """Write the world as WebDataset shards: ``stage1/train-*.tar``, ``stage2/{train,val,test}-*.tar``.

    Also writes ``corpus.txt`` (see :func:`corpus_texts`) and ``world.json`` (seed, sizes, counts, shards).

    Args:
        out_dir: Output folder (created).
        seed: Seed; the same seed writes byte-identical files.
        sizes: A :class:`WorldSizes` or a dict of its fields (e.g. ``{"stage1_train": 16, ...}``).

    Returns:
        The :class:`SyntheticWorld` with shard paths and counts.
    """
    root, sizes = Path(out_dir), _sizes(sizes)
    shards, counts, corpus = {}, {}, [" ".join(c) for c in CHOICES.values()] + [f"{q} {a}" for q, a in TEXT_FACTS]
    for split in SPLITS:
        stage, name = split.split("/")
        writer = ShardWriter(str(root / stage / f"{name}-%06d.tar"), max_count=sizes.samples_per_shard, mtime=0)
        with writer:
            for i in range(_count(sizes, split)):
                sample = build_sample(seed, split, i, sizes)
                corpus += _texts(sample)
                writer.write(sample | {"json": encode_json(sample["json"])})
        shards[split], counts[split] = writer.paths, _count(sizes, split)
    corpus_path = root / "corpus.txt"
    corpus_path.write_text("\n".join(t.replace("\n", " ") for t in corpus) + "\n", encoding="utf-8")
    world = SyntheticWorld(root, shards, counts, corpus_path, seed, sizes)
    manifest = {"seed": seed, "sizes": asdict(sizes), "counts": counts}
    manifest["shards"] = {k: [str(p.relative_to(root)) for p in v] for k, v in shards.items()}
    (root / "world.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return world
