"""Train a small Hugging Face tokenizer in-process (no download): for tests and the offline quickstart."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BASE_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 512,
    extra_special_tokens: Sequence[str] = ("<image>", "<video>"),
) -> PreTrainedTokenizerFast:
    """Trains a byte-fallback-free BPE tokenizer with a Llama-like Metaspace pre-tokenizer.

    The special tokens are `<unk>` (id 0), `<s>` (bos, 1), `</s>` (eos, 2), `<pad>` (3), then
    `extra_special_tokens` in order (the visual placeholders, ids 4, 5, ...). Special tokens are never split
    and never produced from ordinary text by the BPE merges. The result saves with `save_pretrained(dir)` and
    loads back with `lvlm.models.io.tokenizer.load_tokenizer(dir)` (no remote code).

    Args:
        texts: Training corpus (any iterable of strings; consumed once).
        vocab_size: Target vocabulary size including special tokens and the initial alphabet.
        extra_special_tokens: Placeholder tokens to register as special tokens.

    Returns:
        A fast tokenizer that prepends BOS when `add_special_tokens=True`, with `bos_token`, `eos_token`,
        `unk_token` and `pad_token` set, padding side right.
    """
    specials = list(BASE_SPECIAL_TOKENS) + [t for t in extra_special_tokens if t not in BASE_SPECIAL_TOKENS]
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.normalizer = normalizers.NFKC()
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    core.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    bos_id = core.token_to_id("<s>")
    # Like Llama: `tokenizer(text)` prepends BOS; lvlm's own tokenization passes add_special_tokens=False.
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=specials[len(BASE_SPECIAL_TOKENS) :],
        padding_side="right",
    )
    return tokenizer
