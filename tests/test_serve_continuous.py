"""Continuous batching in the decoder: sequences join a running batch and leave it, each with its solo tokens."""

from __future__ import annotations

import torch

from serve_helpers import two_module_composed
from loracompose.decoding import Decoder, SamplingConfig, Sequence


def _sequences(tok):
    prompts = ["The movie", "Once upon a time there was a", "The lake", "The city of", "A"]
    ids = [tok(p)["input_ids"] for p in prompts]
    return [
        Sequence(ids[0], 1, SamplingConfig(max_new_tokens=12)),  # the bare base
        Sequence(ids[1], 2, SamplingConfig(max_new_tokens=5), rows=torch.tensor([[1.0, -0.5]])),
        Sequence(ids[2], 3, SamplingConfig(max_new_tokens=9, temperature=0.7, top_k=0, top_p=0.8),
                 rows=torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),  # logit-sum: base, a1, b2
                 coefficients=torch.tensor([1.0, 1.5, -0.5])),
        Sequence(ids[3], 4, SamplingConfig(max_new_tokens=7), rows=torch.tensor([[0.5, 1.0]])),
        Sequence(ids[4], 5, SamplingConfig(max_new_tokens=10), rows=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
                 coefficients=torch.tensor([1.0, 1.0])),
    ]


def test_sequences_joining_mid_flight_get_their_solo_tokens(tiny_model_dir, tmp_path):
    composed, tok = two_module_composed(tiny_model_dir, tmp_path)
    solo = _sequences(tok)
    for sequence in solo:
        Decoder(composed, tok, [sequence], last_logits_only=True).run()
    assert len({tuple(s.tokens) for s in solo}) == len(solo)

    # 0 and 1 start together; 2 joins after 2 steps, 3 and 4 (prefilled together) after 4; finished rows leave.
    live = _sequences(tok)
    running = Decoder(composed, tok, live[:2], last_logits_only=True)
    joins = {2: [live[2]], 4: [live[3], live[4]]}
    widths, rows, stepped = [], [], []
    step = 0
    while True:
        if step in joins:
            joining = Decoder(composed, tok, joins[step], last_logits_only=True)
            joining.step()  # its prefill and first token
            assert running.can_absorb(joining)
            running.absorb(joining)
        running.step()
        stepped.append(int(running.counts.sum()))
        running.compact()
        widths.append(running.mask.shape[1])
        rows.append(int(running.counts.sum()))
        assert running.out.cache.layers[0].keys.shape[:3] == (rows[-1], 2, widths[-1])
        step += 1
        if running.done and step > max(joins):
            break
    for index, (alone, joined) in enumerate(zip(solo, live)):
        assert joined.tokens == alone.tokens, index
        assert joined.finish_reason == alone.finish_reason == "length"
    # Rows per step (logit-sum members count as rows): all five ran together in step 4, where
    # sequence 1 made its 5th token and left.
    assert stepped[:5] == [2, 2, 2 + 3, 5, 5 + 1 + 2] and rows[4] == 7
    assert running.sequences == [] and rows[-1] == 0
    # Sequence 1 had the longest prompt: once it left, the columns only its row filled went too.
    assert widths[4] < widths[3]


def test_a_cancelled_sequence_leaves_at_once_and_the_others_go_on(tiny_model_dir, tmp_path):
    composed, tok = two_module_composed(tiny_model_dir, tmp_path)
    solo = _sequences(tok)
    for sequence in solo:
        Decoder(composed, tok, [sequence], last_logits_only=True).run()
    live = _sequences(tok)
    decoder = Decoder(composed, tok, live, last_logits_only=True)
    decoder.step()
    decoder.cancel(2)  # the logit-sum sequence: three rows
    assert [s.prompt_ids for s in decoder.compact()] == [live[2].prompt_ids]
    assert int(decoder.counts.sum()) == 1 + 1 + 1 + 2 and decoder.row_weights.shape == (5, 2)
    assert decoder.out.cache.layers[0].keys.shape[0] == 5
    while not decoder.done:
        decoder.step()
        decoder.compact()
    assert live[2].finish_reason == "cancelled" and len(live[2].tokens) == 1
    assert [s.tokens for i, s in enumerate(live) if i != 2] == [s.tokens for i, s in enumerate(solo) if i != 2]


def test_remapping_columns_keeps_each_rows_weights(tiny_model_dir, tmp_path):
    composed, tok = two_module_composed(tiny_model_dir, tmp_path)
    decoder = Decoder(composed, tok, _sequences(tok)[1:2], last_logits_only=True)
    decoder.remap_columns(["a1", "b2"], ["c3", "b2", "a1"])
    assert decoder.row_weights.tolist() == [[0.0, -0.5, 1.0]]


def test_a_short_request_joins_a_running_long_one_and_gets_its_solo_text(tiny_model_dir, tmp_path):
    import threading
    import time

    import httpx

    from serve_helpers import MODULES, make_modules
    from loracompose.serve.background import serve_in_background

    modules_dir = make_modules(tiny_model_dir, tmp_path / "modules")
    positive = next(iter(MODULES))
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_tokens_cap=256, judges="none") as url:
        long = {"model": tiny_model_dir.name, "prompt": "The movie", "max_tokens": 200, "seed": 1, "n": 2,
                "composition": {"modules": {positive: 1.0}}}
        short = {"model": tiny_model_dir.name, "prompt": "Once upon a time", "max_tokens": 4, "seed": 2,
                 "composition": {"modules": {"base": 1.0, positive: 0.5}, "method": "logit-sum"}}
        alone = httpx.post(f"{url}/v1/completions", json=short, timeout=60).json()["choices"][0]["text"]
        answers = {}
        worker = threading.Thread(target=lambda: answers.setdefault(
            "long", httpx.post(f"{url}/v1/completions", json=long, timeout=120)))
        worker.start()
        while httpx.get(f"{url}/health").json()["running_jobs"] < 1:  # the long one is decoding
            time.sleep(0.005)
        joined = httpx.post(f"{url}/v1/completions", json=short, timeout=60)
        health = httpx.get(f"{url}/health").json()
        still_running = worker.is_alive()
        worker.join()
    assert joined.status_code == 200 and joined.json()["choices"][0]["text"] == alone
    assert still_running and health["joined_running"] >= 1  # answered while the long one went on
    assert answers["long"].status_code == 200 and answers["long"].json()["usage"]["completion_tokens"] > 0


def test_joining_with_sliding_window_layers(tmp_path):
    """Gemma 3's sliding-window cache layers: a group joins while the batch is inside the window (merged),
    or past it (decoded beside it); either way each sequence gets its solo tokens."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    from loracompose.models import convert_packaged

    tok = AutoTokenizer.from_pretrained(convert_packaged("smollm2-135m"))
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=12,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=256,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                              bos_token_id=tok.bos_token_id, initializer_range=0.1)
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(tmp_path / "gemma")
    tok.save_pretrained(tmp_path / "gemma")
    composed, tok = two_module_composed(tmp_path / "gemma", tmp_path)
    solo = _sequences(tok)
    for sequence in solo:
        Decoder(composed, tok, [sequence], last_logits_only=True).run()
    live = _sequences(tok)
    cohorts = [Decoder(composed, tok, live[:2], last_logits_only=True)]
    merged = []
    for step in range(40):
        for joining, at in ((live[2:3], 1), (live[3:], 9)):
            if step == at:
                decoder = Decoder(composed, tok, joining, last_logits_only=True)
                decoder.step()
                target = next((d for d in cohorts if d.can_absorb(decoder)), None)
                merged.append(target is not None)
                if target is not None:
                    target.absorb(decoder)
                else:
                    cohorts.append(decoder)
        for decoder in cohorts:
            decoder.step()
            decoder.compact()
        cohorts = [d for d in cohorts if d.sequences]
    assert merged == [True, False]  # the second group came once the batch's cache filled its window
    for index, (alone, joined) in enumerate(zip(solo, live)):
        assert joined.tokens == alone.tokens and joined.finish_reason == "length", index
