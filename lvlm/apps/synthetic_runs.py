"""What the quickstart and the ablation grid share: the synthetic world's media sizes, the tiny towers, the
quickstart's recipes, the tokenizer they train, one training stage through the recipe runner and the greedy
evaluation on the held-out split. Neither command imports the other; both import this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lvlm.core.recipes import recipes_root

RECIPES = recipes_root() / "quickstart"
ENV_DIR = "LVLM_QUICKSTART"

IMAGE_SIZE, FRAMES = 48, 4
# Videos are a third of the media: motion is learned long before binding a colour to a named shape in an image.
VIDEO_FRACTION = 0.35
TOWER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": IMAGE_SIZE,
    "patch_size": 16,
    "hidden_act": "gelu",
}


def synthetic_world_sizes(stage1_train: int, stage2_train: int, stage2_val: int, stage2_test: int) -> Any:
    """The ``WorldSizes`` of a run: these sample counts, the shared media sizes and video share."""
    from lvlm.data.synthetic import WorldSizes

    return WorldSizes(
        stage1_train=stage1_train,
        stage2_train=stage2_train,
        stage2_val=stage2_val,
        stage2_test=stage2_test,
        image_size=IMAGE_SIZE,
        video_frames=FRAMES,
        video_fraction=VIDEO_FRACTION,
    )


def write_tokenizer(out: Path) -> None:
    from lvlm.data.tokenizer_training import train_tokenizer

    lines = (out / "world" / "corpus.txt").read_text(encoding="utf-8").splitlines()
    template_text = "A chat between a curious user and an artificial intelligence assistant. USER: ASSISTANT:"
    tokenizer = train_tokenizer([*lines, template_text] * 2, vocab_size=512)
    tokenizer.save_pretrained(out / "tokenizer")
    print(f"[quickstart] tokenizer: {len(tokenizer)} tokens -> {out / 'tokenizer'}", flush=True)


def run_stage(recipe: Path, steps: int, seed: int) -> None:
    from lvlm.apps.recipe_runner import lightning_main

    args = [
        "-c",
        str(recipe),
        "--trainer.max_steps",
        str(steps),
        "--data.init_args.sampling.batches_per_epoch",
        str(steps),
        "--seed_everything",
        str(seed),
    ]
    print(f"[quickstart] lvlm fit {' '.join(args)}", flush=True)
    lightning_main("fit", args)


def evaluate(model_dir: Path, world_dir: Path) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from lvlm.apps.quickstart_eval import test_questions
    from lvlm.inference.batch_generate import GenerationSettings
    from lvlm.inference.predict import predict
    from lvlm.inference.session import load_session

    session = load_session(model_dir)
    questions = list(test_questions(sorted((world_dir / "stage2").glob("test-*.tar"))))
    with tqdm(total=len(questions), desc="evaluation (greedy)", unit="q") as progress:
        done = [0]

        def on_batch(answered: int, skipped: int) -> None:
            progress.update(answered + skipped - done[0])
            done[0] = answered + skipped

        result = predict(session, questions, GenerationSettings(max_new_tokens=8), batch_size=32, on_batch=on_batch)
    if result.skipped:
        print(f"[quickstart] {len(result.skipped)} questions skipped: {result.skipped[:3]}", flush=True)
    return result.predictions
