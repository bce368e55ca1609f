"""The learned commit rule: its file, its place in the sampler, and its trainer on a tiny checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_sampler import scripted_engine, vocab  # noqa: F401 (vocab is a fixture)

from mercury_lsp.engine.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from mercury_lsp.engine.commit_probe import (
    FEATURES,
    PROBE_FILE,
    CommitProbe,
    load_commit_probe,
    probe_features,
    vocab_features,
)
from mercury_lsp.engine.errors import CheckpointError
from mercury_lsp.engine.infill import EngineSettings, InfillEngine, InfillError, InfillRequest
from mercury_lsp.engine.training.commit_probe import precision_threshold, train_commit_probe
from mercury_lsp.engine.training.corpus import SourceFile

from checkpoints import SAMPLE_CODE, make_tiny_checkpoint


def constant_probe(score: float, threshold: float = 0.5, hidden: int = 4) -> CommitProbe:
    """A probe that gives every position the same score (all weights zero, the bias sets it)."""
    features = len(FEATURES)
    logit = torch.logit(torch.tensor([score]))
    return CommitProbe(torch.zeros(features), torch.ones(features), torch.zeros(hidden, features),
                       torch.zeros(hidden), torch.zeros(hidden), logit, threshold)


def with_probe(engine: InfillEngine, probe: CommitProbe | None, **settings: object) -> InfillEngine:
    loaded = LoadedModel(engine.model, engine.vocab, "scripted", "scripted", torch.device("cpu"), torch.float32,
                         probe)
    return InfillEngine(loaded, EngineSettings(**settings))


# -- the file --------------------------------------------------------------------------------------------------


def test_a_saved_probe_loads_back_and_a_folder_without_one_has_none(tmp_path):
    assert load_commit_probe(tmp_path) is None
    probe = constant_probe(0.8, threshold=0.37)
    probe.save(tmp_path)
    loaded = load_commit_probe(tmp_path)
    assert loaded.threshold == pytest.approx(0.37)
    features = torch.rand(2, 5, len(FEATURES))
    assert torch.allclose(loaded.score(features, torch.zeros(2, 5)), torch.full((2, 5), 0.8))


def test_broken_probe_files_are_one_clear_error(tmp_path):
    (tmp_path / PROBE_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="is not a readable commit probe"):
        load_commit_probe(tmp_path)

    probe = constant_probe(0.5)
    tensors = {name: getattr(probe, name) for name in CommitProbe._TENSORS}
    save_file(tensors, str(tmp_path / PROBE_FILE), metadata={"threshold": "0.5", "features": "p_best,margin"})
    with pytest.raises(CheckpointError, match="trained on other features"):
        load_commit_probe(tmp_path)

    save_file(tensors | {"w2": torch.zeros(3)}, str(tmp_path / PROBE_FILE),
              metadata={"threshold": "0.5", "features": ",".join(FEATURES)})
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_commit_probe(tmp_path)

    save_file(tensors, str(tmp_path / PROBE_FILE), metadata={"threshold": "1.5", "features": ",".join(FEATURES)})
    with pytest.raises(CheckpointError, match=r"outside \(0, 1\]"):
        load_commit_probe(tmp_path)


def test_a_checkpoint_folder_carries_its_probe(tmp_path):
    folder = make_tiny_checkpoint(tmp_path / "model")
    assert load_checkpoint(folder, device="cpu").commit_probe is None
    constant_probe(0.9, threshold=0.6).save(folder)
    assert load_checkpoint(folder, device="cpu").commit_probe.threshold == pytest.approx(0.6)
    (folder / PROBE_FILE).write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="commit probe"):
        load_checkpoint(folder, device="cpu")


def test_saving_new_weights_drops_the_old_weights_probe(tmp_path):
    folder = make_tiny_checkpoint(tmp_path / "model")
    constant_probe(0.9).save(folder)
    loaded = load_checkpoint(folder, device="cpu")
    config = json.loads((folder / "config.json").read_text())
    save_checkpoint(loaded.model, loaded.vocab.tokenizer, folder, config)
    assert not (folder / PROBE_FILE).exists()
    assert load_checkpoint(folder, device="cpu").commit_probe is None


def test_rescale_puts_the_probe_threshold_on_the_rule_threshold():
    probe = constant_probe(0.5, threshold=0.3)
    scores = torch.tensor([0.0, 0.15, 0.3, 0.65, 1.0])
    scaled = probe.rescale(scores, torch.tensor(0.9))
    assert torch.allclose(scaled, torch.tensor([0.0, 0.45, 0.9, 0.95, 1.0]))
    assert bool((scaled[1:] >= scaled[:-1]).all())


def test_features_describe_the_canvas():
    probs = torch.tensor([[[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.05, 0.05, 0.9]]])  # token 0 is filler
    masked = torch.tensor([[True, False, True]])
    settled = torch.tensor([[False, True, False]])
    p_nf = torch.tensor([[0.7, 0.1, 0.9]])
    certainty, second = (f.view(1, 3) for f in vocab_features(probs.log().view(3, 3), torch.tensor([0])))
    features = probe_features(certainty, second, probs[..., 0].log(), probs.max(-1).values, p_nf,
                              torch.zeros(1, 3), masked, settled, torch.tensor([3]), torch.tensor([2]),
                              torch.tensor([True]))
    column = {name: features[0, :, i].tolist() for i, name in enumerate(FEATURES)}
    assert column["p_nonfiller"] == pytest.approx([0.7, 0.1, 0.9])
    assert column["margin"] == pytest.approx([0.5, 0.0, 0.85], abs=1e-6)
    assert column["filler"] == pytest.approx([0.1, 0.8, 0.05])
    assert column["left_settled"] == [1.0, 0.0, 1.0]  # the prefix sits left of position 0
    assert column["right_settled"] == [1.0, 0.0, 0.0]
    assert column["masked_fraction"] == pytest.approx([2 / 3] * 3)
    assert column["single_line"] == [1.0] * 3
    certainty = torch.exp((probs * probs.log()).sum(-1))[0]
    assert column["certainty"] == pytest.approx(certainty.tolist())


# -- in the engine ---------------------------------------------------------------------------------------------


def test_a_sure_probe_commits_the_answer_in_one_step(vocab):  # noqa: F811
    # The answer's tokens sit at 0.6, under the 0.9 threshold: the threshold rule takes several steps. A probe
    # that calls every candidate final commits them all in the first step, and the text is the same.
    engine, _, _ = scripted_engine(vocab, "x = ", "total + 1", content_p=0.6)
    request = InfillRequest(prefix="x = ", max_tokens=16)
    slow = engine.infill(request)
    fast = with_probe(engine, constant_probe(0.99)).infill(request)
    assert fast.text == slow.text == "total + 1"
    assert fast.steps == 1 < slow.steps


def test_a_doubtful_probe_keeps_to_the_step_budget(vocab):  # noqa: F811
    # Scores below its threshold commit nothing early: the budget's minimum per step decides, all the steps run.
    engine, _, _ = scripted_engine(vocab, "x = ", "total + 1", content_p=0.95)
    request = InfillRequest(prefix="x = ", max_tokens=16, steps=8)
    doubtful = with_probe(engine, constant_probe(0.1, threshold=0.5)).infill(request)
    assert doubtful.text == "total + 1"
    assert doubtful.steps > engine.infill(request).steps


def test_a_named_threshold_or_the_threshold_rule_turns_the_probe_off(vocab):  # noqa: F811
    engine, _, _ = scripted_engine(vocab, "x = ", "total + 1", content_p=0.6)
    slow = engine.infill(InfillRequest(prefix="x = ", max_tokens=16))
    probed = with_probe(engine, constant_probe(0.99))
    assert probed.infill(InfillRequest(prefix="x = ", max_tokens=16, threshold=0.9)).steps == slow.steps
    by_threshold = with_probe(engine, constant_probe(0.99), commit_rule="threshold")
    assert by_threshold.infill(InfillRequest(prefix="x = ", max_tokens=16)).steps == slow.steps
    assert with_probe(engine, constant_probe(0.99), threshold=0.9).infill(
        InfillRequest(prefix="x = ", max_tokens=16)).steps == slow.steps
    with pytest.raises(InfillError, match="commit rule must be one of probe, threshold"):
        with_probe(engine, None, commit_rule="guess")


# -- the trainer -----------------------------------------------------------------------------------------------


def test_precision_threshold_is_the_deepest_cut_that_keeps_the_precision():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0])
    assert precision_threshold(scores, labels, 0.75) == pytest.approx(0.6)  # top 4: 3 of 4 right
    assert precision_threshold(scores, labels, 1.0) == pytest.approx(0.8)
    assert precision_threshold(scores, torch.zeros(5), 0.9) == 1.0  # never right: commit nothing early


def test_the_trainer_fits_a_probe_that_loads_beside_the_checkpoint(tmp_path):
    folder = make_tiny_checkpoint(tmp_path / "model")
    loaded = load_checkpoint(folder, device="cpu")
    files = [SourceFile(f"m{i}.py", Path(f"m{i}.py"), SAMPLE_CODE) for i in range(3)]
    report = train_commit_probe(loaded, files, single=4, multi=2, precision=0.9, seed=1)
    assert report.rows > 0 and report.holdout_rows > 0
    assert 0 < report.probe.threshold <= 1
    assert 0.0 <= report.base_rate <= 1.0
    report.probe.save(folder)
    reloaded = load_checkpoint(folder, device="cpu")
    assert reloaded.commit_probe.threshold == pytest.approx(report.probe.threshold)
    result = InfillEngine(reloaded).infill(InfillRequest(prefix="def add(a, b):\n    return ", max_tokens=8))
    assert result.steps >= 1 and isinstance(result.text, str)



def test_train_probe_writes_the_probe_the_engine_then_loads(tmp_path):
    folder = make_tiny_checkpoint(tmp_path / "model")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"m{i}.py").write_text(SAMPLE_CODE)
    cli = [sys.executable, "-m", "mercury_lsp.engine.cli", "train-probe", "--model", str(folder), "--device", "cpu",
           "--root", str(corpus), "--single", "3", "--multi", "1"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["probe"] == str(folder / PROBE_FILE) and 0 < report["threshold"] <= 1
    assert load_checkpoint(folder, device="cpu").commit_probe.threshold == pytest.approx(report["threshold"], abs=1e-4)

    refused = subprocess.run([*cli, "--precision", "1.5"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--precision must be in [0.5, 1)" in refused.stderr
