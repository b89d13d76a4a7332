"""Knowledge distillation (Hinton et al. 2015): a student learns from a teacher's soft targets.

    loss = α · T² · KL(teacher_T ‖ student_T) + (1 − α) · cross-entropy(student, next tokens)

where model_T = softmax(logits / T). A temperature T > 1 softens both distributions, so
the student also learns which wrong tokens the teacher finds plausible; the T² keeps the
soft term's gradients the same size whatever T is (they shrink as 1/T²). α, the distill
weight, mixes the two: α = 0 is plain training, α = 1 learns from the teacher alone.

The teacher is frozen (eval mode, no gradients) and must share the student's vocabulary:
the same prepared data folder, or one prepared with its tokenizer (`--tokenizer-from`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fromscratch import FromScratchError
from fromscratch.data import PreparedData
from fromscratch.train.models import check_data, load_language_model, weights_fingerprint

TEACHER_FAMILIES = ("gpt", "lstm")  # models that predict every position, as the student does


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    weight: float,
) -> torch.Tensor:
    """The mean over tokens of α · T² · KL(teacher_T ‖ student_T) + (1 − α) · cross-entropy.

    logits (..., V) of student and teacher at the same positions, targets (...) the next
    tokens; weight is α, temperature is T.
    """
    vocab = student_logits.size(-1)
    student = student_logits.reshape(-1, vocab).float()
    teacher = teacher_logits.reshape(-1, vocab).float()
    hard = F.cross_entropy(student, targets.reshape(-1))
    soft = F.kl_div(  # KL(p ‖ q) with q = the student: kl_div takes log q first
        F.log_softmax(student / temperature, dim=-1),
        F.log_softmax(teacher / temperature, dim=-1),
        reduction="batchmean",  # summed over the vocabulary, averaged over tokens
        log_target=True,
    )
    return weight * temperature**2 * soft + (1 - weight) * hard


class Teacher:
    """A frozen language model and the loss that distils it into a student."""

    def __init__(
        self,
        model: torch.nn.Module,
        temperature: float,
        weight: float,
        record: dict,
        vocab_size: int,
    ):
        self.model = model.eval().requires_grad_(False)
        self.temperature, self.weight = temperature, weight
        self.record = record  # what it is: goes into the run's config (resume checks it)
        self.vocab_size = vocab_size  # the data's tokens, which both models know

    def loss(self, student_logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The distillation loss of a student's logits on inputs x with next tokens y."""
        with torch.no_grad():
            teacher_logits = self.model(x)
        # A Perceiver AR student predicts only its last positions: compare those.
        teacher_logits = teacher_logits[:, -student_logits.size(1) :]
        # Either model may pad its output layer beyond the data's vocabulary (to a multiple
        # of 64, say); the padding is no token, so both distributions are over the real ones.
        V = self.vocab_size
        return distillation_loss(
            student_logits[..., :V], teacher_logits[..., :V], y, self.temperature, self.weight
        )


def load_teacher(
    source: str, data: PreparedData, context: int, temperature: float, weight: float
) -> Teacher:
    """The teacher at `source` (see load_language_model), checked against the student's
    data (the same vocabulary) and training length `context` (a GPT must see it whole)."""
    # Building it draws random initial weights (then replaced by the trained ones): leave
    # the student's random stream as it would be without a teacher.
    with torch.random.fork_rng(devices=[]):
        model, config = load_language_model(source, who="teacher", families=TEACHER_FAMILIES)
    spec = config["model"]
    check_data(source, config, data, "teacher")  # its token ids mean the student's tokens
    if spec["family"] == "gpt" and context > spec["context"]:
        raise FromScratchError(
            f"teacher {source}: its context is {spec['context']} tokens, shorter than the "
            f"student's training length {context}"
        )
    record = {"source": source, "model": spec, "weights_sha256": weights_fingerprint(model)}
    return Teacher(model, temperature, weight, record, data.meta["vocab_size"])
