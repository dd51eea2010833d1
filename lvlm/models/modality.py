"""The ``Modality`` component: everything lvlm must know about one kind of media, declared once.

A modality bundles
- its **name** (``image``: its key under ``model.modalities``, its tower's key, the record field naming its files),
  its **placeholder** (``<image>``) and that placeholder's id once a model holds it (``token_id``), the **tower**
  that encodes it (a factory, built in ``configure_model``) and the batch key of its items (``input_name``);
- how its **shard members** are recognised (:meth:`Modality.member_index`) and how ``lvlm shards`` writes them
  from the files a record names (:meth:`Modality.shard_members`);
- how one item is **decoded** and **transformed** into a tensor (:meth:`Modality.load`);
- how items are **batched** and fed to the tower (:meth:`Modality.collate`; the batch key is ``input_name``).

Recipes name modalities by class path (``model.modalities.thermal.class_path: my_plugin.ThermalModality``), and
a saved model records each one's class path and arguments (:meth:`Modality.to_spec`) so ``lvlm chat``,
``predict``, ``eval`` and ``serve`` decode media exactly as training did. Third-party modalities register
through the ``lvlm.modalities`` entry-point group (see docs/extending.md).

The class lives with the model (the lowest layer every user imports): ``VideoLLaVA`` holds its modalities, the
data pipeline takes them as parameters, and the concrete ones (:mod:`lvlm.modalities`: ``ImageModality``,
``VideoModality``, a plugin's) add the decoding and transforms, which need ``lvlm.data``.

Legend: ``n`` items, ``t`` frames, ``c`` channels, ``s`` the tower's input side.
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from lvlm.core.registry import class_path_of
from lvlm.models.vision.base import Preprocessing, VisionTower

_MEMBER = re.compile(r"^(?:(?P<index>\d+)\.)?(?P<ext>[a-z0-9]+)$")


@dataclass(frozen=True)
class TowerFacts:
    """What the data side needs of a tower, read without its weights (built once on the ``meta`` device)."""

    tokens_per_image: int
    tokens_per_frame: int
    preprocessing: Preprocessing
    num_frames: int | None


class Modality(ABC):
    """Base of modalities.

    Args:
        tower: factory of the tower that encodes this modality (in recipes: the tower's class path and
            arguments); called once by :meth:`build_tower`.
        token: the placeholder token; ``<name>`` by default.

    The instance's ``name`` is the key it is given under ``model.modalities`` (set by :meth:`bind`); its
    ``token_id`` is set by the model that adds its placeholder (None before).
    Subclasses set ``extensions`` (the shard member extensions they claim), optionally ``file_extensions`` (files
    on disk recognised as theirs) and ``openai_part_types`` (OpenAI content parts served to them), and implement
    :meth:`decode` and :meth:`make_transform`.
    """

    extensions: tuple[str, ...] = ()
    file_extensions: tuple[str, ...] = ()  # files on disk this modality is recognised by (``lvlm chat``); none: by name
    uses_frames: bool = False  # a video-like modality: ``num_frames`` items per sample, tokens per frame
    marker_rank: int = 2  # where its markers go when lvlm places them before a question (lower first)
    # OpenAI content part types besides ``NAME_url`` that ``lvlm serve`` routes to this modality: ``input_audio``
    # (``{"data": BASE64, "format": "wav"}``; the decoded bytes reach :meth:`decode`). One modality per type.
    openai_part_types: tuple[str, ...] = ()

    def __init__(self, tower: Callable[[], VisionTower], token: str | None = None) -> None:
        self.tower_factory = tower
        self._token = token
        self.name = ""
        self.token_id: int | None = None

    # --- identity ----------------------------------------------------------------------------------
    def bind(self, name: str) -> Modality:
        """Name this modality (its key under ``model.modalities``); returns self."""
        self.name = name
        return self

    @property
    def token(self) -> str:
        """The placeholder written in conversations and repeated in ``input_ids``: ``<name>`` unless given."""
        return self._token or f"<{self.name}>"

    @property
    def input_name(self) -> str:
        """Keyword of ``VideoLLaVA.forward`` and key of the batch tensor: the plural of the name (``images``)."""
        return self.name if self.name.endswith("s") else f"{self.name}s"

    @property
    def record_fields(self) -> tuple[str, ...]:
        """Fields of an original-format JSON record that name this modality's files (``image``)."""
        return (self.name,)

    def init_args(self) -> dict[str, Any]:
        """Constructor arguments other than ``tower`` (saved with the model so inference decodes alike)."""
        return {"token": self._token}

    def to_spec(self) -> dict[str, Any]:
        """``{class_path, init_args}`` recorded in a saved model (the tower is recorded separately)."""
        return {"class_path": class_path_of(type(self)), "init_args": self.init_args()}

    # --- model side --------------------------------------------------------------------------------
    def build_tower(self) -> VisionTower:
        tower = self.tower_factory()
        if not isinstance(tower, VisionTower):
            raise TypeError(
                f"modality {self.name!r}: the tower factory built {type(tower).__name__}, not a VisionTower"
            )
        return tower

    @cached_property
    def tower_facts(self) -> TowerFacts:
        """Token counts and preprocessing of the tower, read from a copy built on the ``meta`` device."""
        with torch.device("meta"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*meta parameter.*")
            tower = self.build_tower()
        return TowerFacts(
            tokens_per_image=tower.tokens_per_image,
            tokens_per_frame=tower.tokens_per_frame,
            preprocessing=tower.preprocessing,
            num_frames=getattr(tower, "num_frames", None),
        )

    def use_tower_facts(self, tower: VisionTower) -> None:
        """Take the facts from a built tower (a loaded model) instead of building one on ``meta``."""
        self.__dict__["tower_facts"] = TowerFacts(
            tower.tokens_per_image, tower.tokens_per_frame, tower.preprocessing, getattr(tower, "num_frames", None)
        )

    # --- data side ---------------------------------------------------------------------------------
    def num_tokens(self, num_frames: int) -> int:
        """Placeholder ids one item expands to."""
        facts = self.tower_facts
        return facts.tokens_per_frame * num_frames if self.uses_frames else facts.tokens_per_image

    def member_index(self, member: str) -> tuple[int | None, int | None] | None:
        """``(item index, frame index)`` if this modality claims the shard member, else None.

        Member names follow docs/data-format.md: ``jpg`` (the only item) or ``0.jpg``, ``1.jpg`` (several).
        """
        match = _MEMBER.match(member.lower())
        if match is None or match["ext"] not in self.extensions:
            return None
        return (None if match["index"] is None else int(match["index"])), None

    def shard_members(self, path: Path, index: int, count: int, key: str, **options: Any) -> dict[str, bytes]:
        """Members to write for one file a record names (``lvlm shards``): by default the file as it is."""
        ext = path.suffix.lower().lstrip(".")
        if ext not in self.extensions:
            raise ValueError(f"{path}: not a {self.name} file ({', '.join(self.extensions)})")
        return {(f"{index}." if count > 1 else "") + ext: path.read_bytes()}

    @abstractmethod
    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> Any:
        """Decode one item: shard bytes, a file path, or (frames stored as images) a list of encoded frames.

        Raises:
            lvlm.data.decoding.MediaDecodeError: undecodable data (the error names ``key``).
        """

    @abstractmethod
    def make_transform(
        self, *, augment: bool = False, seed: int | None = None, normalize: bool = True
    ) -> Callable[[Any], torch.Tensor]:
        """The transform from a decoded item to the tower's input, built from the tower's preprocessing.

        Args:
            augment: random augmentation (training only; evaluation is deterministic).
            seed: seed of the augmentation generator (one per rank and data worker).
            normalize: float pixels normalised with the tower's mean/std; False keeps uint8 (the tower normalises).
        """

    def load(
        self,
        payload: Any,
        *,
        key: str,
        num_frames: int,
        transform: Callable[[Any], torch.Tensor] | None = None,
        backend: str | None = None,
    ) -> torch.Tensor:
        """Decode then transform one item (inference: the deterministic transform unless one is given)."""
        transform = transform or self.make_transform()
        return transform(self.decode(payload, key=key, num_frames=num_frames, backend=backend))

    def collate(self, items: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stack one batch's items (in sample order, then placeholder order) into the tower's input."""
        return torch.stack(list(items))
