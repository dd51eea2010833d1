"""A tiny in-test data module and tiny recipes for the training tests (CPU, seconds, no download).

``TinyDataModule`` takes ``tokenizer`` and ``modalities`` exactly as the real data module does (the CLI links
them from the lit module). Like ``LVLMDataModule`` it owns its stream position: each epoch reads the batches in a
seeded shuffle, it counts the batches handed to ``training_step`` itself, and ``state_dict``/``load_state_dict``
save and restore that position. A resume that restores the model but not the data position therefore trains
on other batches than an uninterrupted run, and the resume tests fail.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from torch.utils.data import DataLoader, IterableDataset

from lvlm.data.settings import MediaSettings
from lvlm.data.tokenizer_training import train_tokenizer
from tests.models.tiny import text_dict, vision_dict

TEXT_IDS = (10, 140)  # ordinary tokens of the tiny tokenizer


class _Batches(IterableDataset):
    """Fixed batches (validation, test): the batch ids ``start..stop`` of this rank."""

    def __init__(self, make, start: int, stop: int, rank: int, world: int) -> None:
        self.make, self.start, self.stop, self.rank, self.world = make, start, stop, rank, world

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.make(step * self.world + self.rank)


class _TrainStream(IterableDataset):
    """One rank's training batches: the data module's shuffle of the current epoch, from its position on."""

    def __init__(self, data: TinyDataModule, rank: int, world: int) -> None:
        self.data, self.rank, self.world = data, rank, world

    def __len__(self) -> int:
        return self.data.batches_per_epoch

    def __iter__(self):
        data = self.data
        for step in data.epoch_order(data.epoch)[data.trained :]:
            yield data.make_batch(step * self.world + self.rank)
        data.epoch, data.trained = data.epoch + 1, 0


class TinyDataModule(pl.LightningDataModule):
    """Batches of two samples: one with an image, one with a video, text ids drawn from the batch index."""

    def __init__(
        self,
        tokenizer: Any = None,
        modalities: dict[str, Any] | None = None,
        template: Any = None,
        batch_size: int = 2,
        num_frames: int = 3,
        text_length: int = 6,
        batches_per_epoch: int = 64,
        seed: int = 0,
        filler: bool = False,
        media_by_rank: bool = False,
    ) -> None:
        super().__init__()
        self.filler = filler  # mark every training batch as a zero-loss filler (the packed single pass's)
        # rank 0's batches hold images only; rank 1's videos only and text only in turn (sharded towers must
        # still run the same collectives on every rank)
        self.media_by_rank, self.world = media_by_rank, 1
        self.tokenizer, self.modalities = tokenizer, {m.input_name: m for m in (modalities or {}).values()}
        self.batch_size, self.num_frames, self.text_length = batch_size, num_frames, text_length
        self.media = MediaSettings(num_frames=num_frames)  # what LVLMModule records of the data side
        self.batches_per_epoch, self.seed = batches_per_epoch, seed
        self.epoch, self.trained = 0, 0  # the stream position: the epoch, and its batches trained on

    def make_batch(self, index: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        rows, media = [], {"images": [], "videos": []}
        kinds = ["images" if i % 2 == 0 else "videos" for i in range(self.batch_size)]
        if self.media_by_rank:
            rank, step = index % self.world, index // self.world
            kinds = [("images" if rank == 0 else "videos" if step % 2 == 0 else "text")] * self.batch_size
        for key in kinds:
            prompt = torch.randint(*TEXT_IDS, (self.text_length,), generator=g)
            answer = torch.randint(*TEXT_IDS, (self.text_length,), generator=g)
            if key == "text":
                ids = torch.cat([torch.tensor([self.tokenizer.bos_token_id]), prompt, answer])
                rows.append((ids, torch.cat([torch.full((ids.numel() - answer.numel(),), -100), answer])))
                continue
            modality = self.modalities[key]
            frames = self.num_frames if key == "videos" else 1
            token_id = self.tokenizer.convert_tokens_to_ids(modality.token)
            side = modality.tower_facts.preprocessing.size
            visual = torch.full((modality.num_tokens(frames),), token_id)
            ids = torch.cat([torch.tensor([self.tokenizer.bos_token_id]), visual, prompt, answer])
            labels = torch.cat([torch.full((ids.numel() - answer.numel(),), -100), answer])
            rows.append((ids, labels))
            shape = (3, side, side) if key == "images" else (frames, 3, side, side)
            media[key].append(torch.randn(shape, generator=g))
        length = max(ids.numel() for ids, _ in rows)
        pad = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.stack([torch.nn.functional.pad(r, (0, length - r.numel()), value=pad) for r, _ in rows]),
            "labels": torch.stack(
                [torch.nn.functional.pad(lab, (0, length - lab.numel()), value=-100) for _, lab in rows]
            ),
            "attention_mask": torch.stack([(torch.arange(length) < r.numel()).long() for r, _ in rows]),
            "modalities": [k.removesuffix("s") for k in kinds],
        }
        if self.filler and index < 10_000:  # training batches only (see the loaders below)
            batch["filler"] = True
        return batch | {k: torch.stack(v) for k, v in media.items() if v}

    def _rank(self) -> int:
        """This process's rank; records the world size (``make_batch`` reads it for ``media_by_rank``)."""
        self.world = self.trainer.world_size if self.trainer else 1
        return self.trainer.global_rank if self.trainer else 0

    def _loader(self, start: int, stop: int) -> DataLoader:
        rank = self._rank()
        return DataLoader(_Batches(self.make_batch, start, stop, rank, self.world), batch_size=None)

    def epoch_order(self, epoch: int) -> list[int]:
        """The training batch ids of ``epoch`` in reading order (a shuffle seeded by ``seed`` and ``epoch``)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.batches_per_epoch, generator=generator).tolist()

    def train_dataloader(self) -> DataLoader:
        rank = self._rank()
        return DataLoader(_TrainStream(self, rank, self.world), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._loader(10_000, 10_002)

    def test_dataloader(self) -> DataLoader:
        return self._loader(20_000, 20_002)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Counts the training batches handed to ``training_step`` (prefetched ones are not trained on yet)."""
        if self.trainer is not None and self.trainer.training:
            self.trained += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.trained}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.trained = state["epoch"], state["batches"]


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    words = "what colour is the shape in image video red green blue circle square moves left right up down yes no"
    return train_tokenizer([words, "USER: ASSISTANT: A chat between a curious user and an assistant."] * 20, 300)


def write_tokenizer(directory: Path) -> Path:
    tiny_tokenizer().save_pretrained(directory)
    return directory


def tiny_model_args(tokenizer_dir: Path, **arguments: Any) -> dict[str, Any]:
    """``model:`` of a tiny recipe: CLIP image tower, LanguageBind-style video tower, 2-layer Llama.

    Arguments are ``LVLMModule``'s; a group (``parts``, ``optimisation``, ``sharding``, ``export``) is given as a
    dict of the fields it changes (``optimisation={"train_llm": True}``).
    """
    vocab = len(tiny_tokenizer())
    llm = text_dict(vocab_size=vocab, pad_token_id=3, bos_token_id=1, eos_token_id=2)
    args: dict[str, Any] = {
        "parts": {
            "llm": {"class_path": "lvlm.models.language_model.LanguageModel", "init_args": {"config": llm}},
            "modalities": {
                "image": {
                    "class_path": "lvlm.modalities.ImageModality",
                    "init_args": {
                        "tower": {
                            "class_path": "lvlm.models.vision.clip_tower.CLIPVisionTower",
                            "init_args": {"config": vision_dict(), "select_layer": -2},
                        }
                    },
                },
                "video": {
                    "class_path": "lvlm.modalities.VideoModality",
                    "init_args": {
                        "tower": {
                            "class_path": "lvlm.models.vision.clip_tower.LanguageBindVideoTower",
                            "init_args": {"config": vision_dict(), "select_layer": -2, "num_frames": 3},
                        }
                    },
                },
            },
            "tokenizer": str(tokenizer_dir),
        },
        "optimisation": {
            "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3, "weight_decay": 0.0}},
            "lr_scheduler": {"class_path": "lvlm.training.optim.WarmupCosineLR", "init_args": {"warmup_ratio": 0.25}},
        },
    }
    for name, value in arguments.items():
        args[name] = args[name] | value if isinstance(args.get(name), dict) else value
    return args


def instantiate_module(args: dict[str, Any]):
    """An ``LVLMModule`` from a recipe's ``model:`` section, typed and validated as ``lvlm fit`` does."""
    from jsonargparse import ArgumentParser

    from lvlm.training.module import LVLMModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(LVLMModule, "model")
    return parser.instantiate(parser.parse_object({"model": args})).model


def write_recipe(path: Path, tokenizer_dir: Path, trainer: dict | None = None, **model: Any) -> Path:
    recipe = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 3, "enable_progress_bar": False} | (trainer or {}),
        "model": tiny_model_args(tokenizer_dir, **model),
        "data": {"class_path": "tests.training.tiny.TinyDataModule", "init_args": {"batch_size": 2, "num_frames": 3}},
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


class BlockAtStep(pl.Callback):
    """Test-only: at the start of the batch after ``step`` optimizer steps, write ``marker`` and hang, so the
    test can SIGKILL the process at a known point (after a checkpoint, before the end). Once the marker
    exists it never blocks again, so the same command resumes."""

    def __init__(self, step: int, marker: str, seconds: float = 300.0) -> None:
        self.step, self.marker, self.seconds = step, marker, seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not Path(self.marker).exists():
            import time

            Path(self.marker).write_text(str(trainer.global_step))
            time.sleep(self.seconds)
