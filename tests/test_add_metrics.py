"""scripts/add_metrics.py: a later evaluation joins a shipped model's metrics.json and card without
losing what was there (earlier numbers, their protocol, the card's other sections)."""
import json

import pytest

from aigc import checkpoint as ckpt
from aigc.finetune.cards import write_card
from aigc.kinds import build
from scripts.add_metrics import add_metrics


def test_a_new_metric_joins_the_card_and_keeps_the_old(tmp_path):
    d = tmp_path / "vae-x"
    ckpt.save_pretrained(build("vae", tiny=True), d, meta={"dataset": "mnist"})
    (d / "metrics.json").write_text(json.dumps({"domain_fd": 51.1, "n": 10000, "seed": 0, "protocol": "domain: A"}))
    write_card(d, title="vae-x", summary="A tiny VAE.", train_command="python -m aigc train ...",
               eval_command="python -m aigc eval vae-x --metrics domain_fd --n 10000 --json",
               hardware="a test", extra="## Target and what limits it\n\nA note that must stay.")
    new = {"dataset": "mnist", "n": 200, "seed": 0, "model": "vae-x", "nll_nats": 88.62, "nll_k": 1000,
           "protocol": "NLL: importance-weighted bound, k=1000", "eval_seconds": 11.7}
    cmd = "python -m aigc eval vae-x --metrics nll --n 200 --json"
    m = add_metrics(d, new, cmd)
    assert m["domain_fd"] == 51.1 and m["nll_nats"] == 88.62 and m["n"] == 10000 and "eval_seconds" not in m
    assert m["protocol"] == "domain: A; NLL: importance-weighted bound, k=1000"
    card = (d / "README.md").read_text()
    assert "| Domain FD" in card and "| Test NLL, nats (IWAE bound, lower is better) | 88.62 |" in card
    assert "Protocol: domain: A; NLL: importance-weighted bound, k=1000" in card
    block = card.split("Evaluation (prints one JSON object")[1].split("## Training facts")[0]
    assert "--metrics domain_fd" in block and cmd in block
    assert "A note that must stay." in card and "## Training facts" in card and card.count("## Measured metrics") == 1
    assert json.loads((d / "metrics.json").read_text()) == m
    # once more with the same result: nothing doubles
    add_metrics(d, new, cmd)
    again = (d / "README.md").read_text()
    assert again.count(cmd) == 1 and again.count("NLL: importance-weighted bound") == 1
    with pytest.raises(ValueError, match="not an `aigc eval --json` result"):
        add_metrics(d, {**new, "model": "another"}, cmd)
