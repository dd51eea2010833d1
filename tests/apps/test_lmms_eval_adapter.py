"""The real lmms-eval runs an lvlm model through the adapter: the local tasks and the command of docs/evaluation.md.

Every answer is compared with lvlm's own one-by-one generation for the same question and files, every
likelihood with a plain forward pass, and the metrics with the fractions those comparisons imply. lmms-eval
lives in its own environment (``.ci/run`` makes one and sets ``LVLM_REQUIRE_LMMS_EVAL=1``, which turns the skip
below into an error).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("lmms_eval") is None:
    if os.environ.get("LVLM_REQUIRE_LMMS_EVAL") == "1":
        raise RuntimeError("LVLM_REQUIRE_LMMS_EVAL=1 but lmms-eval is not installed: pip install -e '.[lmms-eval]'")
    pytest.skip(
        "lmms-eval is not installed (pip install -e '.[lmms-eval]' in its own venv; .ci/run does)",
        allow_module_level=True,
    )

from lvlm.apps.lmms.model import LvlmModel  # noqa: E402
from lvlm.inference.batch_generate import GenerationSettings  # noqa: E402
from lvlm.inference.media_files import load_media  # noqa: E402
from lvlm.inference.predict import answer  # noqa: E402
from lvlm.inference.session import load_session  # noqa: E402
from tests.inference.scoring_reference import reference_logprob  # noqa: E402
from tests.inference.tiny_checkpoint import save_tiny_checkpoint, write_image, write_mp4  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "evaluation.md").read_text()
FRAMES = 3  # num_frames=3 in the doc's command; the tiny video tower's own count is 4

IMAGE_DOCS = [
    {"question": "what colour is the shape?", "images": ["media/red.png"], "videos": []},
    {"question": "describe the two pictures", "images": ["media/red.png", "media/blue.jpg"], "videos": []},
    {"question": "is there a small object?", "images": ["media/blue.jpg"], "videos": []},
]
VIDEO_DOCS = [
    {"question": "where does the square move?", "images": [], "videos": ["media/a.mp4"]},
    {"question": "compare the two clips", "images": [], "videos": ["media/a.mp4", "media/b.mp4"]},
    {"question": "describe the video and the picture", "images": ["media/red.png"], "videos": ["media/b.mp4"]},
    {"question": "what happens?", "images": [], "videos": ["media/missing.mp4"]},  # an empty answer, not a crash
]
CHOICE_DOCS = [
    {"question": "what colour is the shape?", "images": ["media/red.png"], "videos": [], "choices": ["red", "blue"]},
    {"question": "where does it move?", "images": [], "videos": ["media/a.mp4"], "choices": ["left", "right", "up"]},
    {"question": "which one?", "images": ["media/blue.jpg"], "videos": ["media/b.mp4"], "choices": ["yes", "no"]},
]


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.DOTALL)


def shell_commands(language: str) -> list[str]:
    text = "\n".join(fenced(language)).replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def expected_answers(session, root: Path, docs: list[dict]) -> list[str]:
    settings = GenerationSettings(max_new_tokens=6)  # the YAML's max_new_tokens
    paths = [[root / p for p in d["images"] + d["videos"]] for d in docs]
    return [answer(session, d["question"], p, settings).split("\n\n")[0].strip() for d, p in zip(docs, paths)]


def expected_logprobs(session, root: Path, docs: list[dict]) -> list[list[float]]:
    out = []
    for doc in docs:
        media = [("image", load_media(session, "image", root / p)) for p in doc["images"]]
        media += [("video", load_media(session, "video", root / p)) for p in doc["videos"]]
        kinds = [kind for kind, _ in media]
        scores = []
        for choice in doc["choices"]:
            ids = session.tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
            scores.append(reference_logprob(session, doc["question"], kinds, media, ids)[0])
        out.append(scores)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The doc's task files and command, run once in a fresh folder with a tiny model; its outputs and expectations."""
    root = tmp_path_factory.mktemp("lmms")
    save_tiny_checkpoint(root / "tiny-model")
    (root / "media").mkdir()
    write_image(root / "media" / "red.png", (220, 20, 20))
    write_image(root / "media" / "blue.jpg", (20, 20, 220), size=(32, 44))
    write_mp4(root / "media" / "a.mp4", seed=0)
    write_mp4(root / "media" / "b.mp4", num_frames=12, seed=2)

    session = load_session(root / "tiny-model", num_frames=FRAMES)
    image_answers = expected_answers(session, root, IMAGE_DOCS)
    video_answers = [*expected_answers(session, root, VIDEO_DOCS[:-1]), ""]
    logprobs = expected_logprobs(session, root, CHOICE_DOCS)
    best = [max(range(len(s)), key=s.__getitem__) for s in logprobs]
    worst = [min(range(len(s)), key=s.__getitem__) for s in logprobs]

    tasks = root / "tasks"
    tasks.mkdir()
    image_yaml, choice_yaml = fenced("yaml")
    (tasks / "lvlm_demo_image.yaml").write_text(image_yaml)
    (tasks / "lvlm_demo_video.yaml").write_text(image_yaml.replace("image", "video"))
    (tasks / "lvlm_demo_choice.yaml").write_text(choice_yaml)
    (tasks / "demo_utils.py").write_text(fenced("py")[0])
    # image: docs 0 and 2 right (2/3); video: doc 0 right (1/4); choice: gold = most likely choice for docs 0, 1
    image_refs = [image_answers[0], "not this one", image_answers[2]]
    video_refs = [video_answers[0], "not this one", "nor this", "something"]
    write_jsonl(tasks / "demo_image.jsonl", [{**d, "answer": a} for d, a in zip(IMAGE_DOCS, image_refs)])
    write_jsonl(tasks / "demo_video.jsonl", [{**d, "answer": a} for d, a in zip(VIDEO_DOCS, video_refs)])
    labels = [best[0], best[1], worst[2]]
    write_jsonl(tasks / "demo_choice.jsonl", [{**d, "label": g} for d, g in zip(CHOICE_DOCS, labels)])

    (command,) = [c for c in shell_commands("shell") if c.startswith("lmms-eval ")]
    argv = [str(Path(sys.executable).parent / "lmms-eval"), *shlex.split(command)[1:]]
    env = {
        **os.environ,
        "HF_HOME": str(root / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")] if p),
    }
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    out = root / "results" / "lmms" / "tiny-model"
    results = sorted(out.glob("*_results.json")) if out.is_dir() else []
    logs = f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    assert results, f"lmms-eval wrote no results (exit {done.returncode}):\n{logs}"
    samples = {}
    for path in out.glob("*_samples_*.jsonl"):
        task = path.stem.split("_samples_")[1]
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        samples[task] = sorted(rows, key=lambda r: r["doc_id"])
    return {
        "results": json.loads(results[-1].read_text())["results"],
        "samples": samples,
        "image": image_answers,
        "video": video_answers,
        "logprobs": logprobs,
        "labels": labels,
        "returncode": done.returncode,
        "root": root,
    }


def test_lvlm_is_registered_through_the_entry_point():
    from lmms_eval.models import get_model

    assert get_model("lvlm") is LvlmModel


def test_image_task_answers_are_lvlms_own(run):
    assert run["returncode"] == 0
    answers = [row["filtered_resps"] for row in run["samples"]["lvlm_demo_image"]]
    assert answers == run["image"]
    assert len(set(answers)) > 1  # the prompts (one or two images) really differ
    assert run["results"]["lvlm_demo_image"]["exact_match,none"] == pytest.approx(2 / 3)


def test_video_task_answers_use_num_frames_and_several_videos_and_survive_a_missing_one(run):
    answers = [row["filtered_resps"] for row in run["samples"]["lvlm_demo_video"]]
    assert answers == run["video"]
    assert run["results"]["lvlm_demo_video"]["exact_match,none"] == pytest.approx(1 / 4)


def test_choice_task_scores_are_answer_nlls_and_pick_the_most_likely(run):
    rows = run["samples"]["lvlm_demo_choice"]
    assert len(rows) == len(CHOICE_DOCS)
    for row, expected in zip(rows, run["logprobs"]):
        scores = [float(nll) for nll, _ in row["filtered_resps"]]
        assert scores == pytest.approx([-lp for lp in expected], abs=1e-4)
    # gold = the most likely choice for docs 0 and 1, the least likely for doc 2: lmms-eval takes the argmin
    assert run["results"]["lvlm_demo_choice"]["acc,none"] == pytest.approx(2 / 3)


def test_benchmark_commands_name_real_tasks_and_known_model_args():
    from lmms_eval.tasks import TaskManager

    known = TaskManager().all_tasks
    params = set(inspect.signature(LvlmModel.__init__).parameters) - {"self"}
    commands = shell_commands("sh")
    assert len(commands) == 4
    named = set()
    for command in commands:
        args = shlex.split(command)
        assert args[:3] == ["lmms-eval", "--model", "lvlm"]
        model_args = dict(item.split("=", 1) for item in args[args.index("--model_args") + 1].split(","))
        assert set(model_args) <= params
        named |= set(args[args.index("--tasks") + 1].split(","))
    assert named <= set(known), named - set(known)
    for paper in ("gqa", "scienceqa_img", "textvqa_val", "mmbench_en_dev", "llava_in_the_wild", "mmvet", "pope"):
        assert paper in named
    for video in ("videomme", "mvbench", "egoschema_subset", "nextqa_mc_test", "egoschema_subset_mcppl"):
        assert video in named


def test_the_install_command_is_what_ci_runs():
    assert shell_commands("shell")[0] == 'pip install -e ".[lmms-eval]"'
    assert 'pip install -e ".[lmms-eval,test]"' in (ROOT / ".ci" / "run").read_text()


def test_multi_round_generation_feeds_each_round_from_doc_to_text(run, tmp_path):
    from lmms_eval.api.instance import Instance

    root = run["root"]
    model = LvlmModel(pretrained=str(root / "tiny-model"), num_frames=FRAMES, device="cpu")
    doc = {"question": "what colour is the shape?", "image": str(root / "media" / "red.png")}
    model.task_dict = {"t": {"test": [doc]}}

    def doc_to_visual(d):
        return [d["image"]]

    def doc_to_text(d, previous_output, round_idx, previous_round_info):
        if round_idx == 2:
            return None, None, True, previous_output, None
        return [d["image"]], f"you said {previous_output[-1]}. is it red?", False, previous_output, None

    gen_kwargs = {"max_new_tokens": 5, "until": []}
    request = Instance(
        request_type="generate_until_multi_round",
        arguments=(doc["question"], gen_kwargs, doc_to_visual, doc_to_text, 0, "t", "test"),
        idx=0,
        metadata={"task": "t", "doc_id": 0, "repeats": 1},
    )
    (rounds,) = model.generate_until_multi_round([request])
    session = model.session
    settings = GenerationSettings(max_new_tokens=5)
    first = answer(session, doc["question"], [doc["image"]], settings)
    second = answer(session, f"you said {first}. is it red?", [doc["image"]], settings)
    assert rounds == [first, second]
