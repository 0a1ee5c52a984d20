"""The step-wise decoder the server batches with: a mixed batch gives each sequence its solo tokens."""

from __future__ import annotations

import torch

from serve_helpers import two_module_composed
from loracompose.decoding import Decoder, SamplingConfig, Sequence, continuation_text, sample


def test_mixed_batch_equals_each_sequence_alone(tiny_model_dir, tmp_path):
    composed, tok = two_module_composed(tiny_model_dir, tmp_path)

    def sequences():
        ids = [tok(p)["input_ids"] for p in ["The movie", "Once upon a time there was", "The lake", "The city"]]
        return [
            Sequence(ids[0], 1, SamplingConfig(max_new_tokens=9)),  # the bare base
            Sequence(ids[1], 2, SamplingConfig(max_new_tokens=6), rows=torch.tensor([[1.0, -0.5]])),
            Sequence(ids[2], 3, SamplingConfig(max_new_tokens=9, temperature=0.7, top_k=0, top_p=0.8),
                     rows=torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),  # logit-sum: base, a1, b2
                     coefficients=torch.tensor([1.0, 1.5, -0.5])),
            Sequence(ids[3], 4, SamplingConfig(max_new_tokens=9), rows=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
                     coefficients=torch.tensor([1.0, 1.0])),
        ]

    together = sequences()
    decoder = Decoder(composed, tok, together, last_logits_only=True)
    assert decoder.row_weights.shape == (1 + 1 + 3 + 2, 2) and len(decoder.groups) == 3  # 0 and 1 share one
    decoder.run()
    for index, solo in enumerate(sequences()):
        Decoder(composed, tok, [solo], last_logits_only=True).run()
        assert together[index].tokens == solo.tokens and together[index].finish_reason == solo.finish_reason
    assert [len(s.tokens) for s in together] == [9, 6, 9, 9]  # each its own max_new_tokens (no EOS here)
    assert len({tuple(s.tokens) for s in together}) == 4

    # A cancelled sequence stops at once; the others go on unchanged.
    again = sequences()
    decoder = Decoder(composed, tok, again, last_logits_only=True)
    with composed.composition(decoder.row_weights):
        decoder.step()
        decoder.cancel(1)
        while not decoder.done:
            decoder.step()
    assert again[1].finish_reason == "cancelled" and len(again[1].tokens) == 1
    assert [s.tokens for i, s in enumerate(again) if i != 1] == [s.tokens for i, s in enumerate(together) if i != 1]

    # `sample` (the CLI's path) agrees with the step-wise decoder on the same sequence.
    (text,) = sample(composed, tok, ["Once upon a time there was"], [2], SamplingConfig(max_new_tokens=6),
                     weights=torch.tensor([[1.0, -0.5]]))
    assert text == continuation_text(tok, together[1])
    composed.detach()
