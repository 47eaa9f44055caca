"""The recipe line and the seeds per point that the report prints and every study figure
carries as a footnote."""

from odenet.nets import ModelConfig
from odenet.studies.recipe import recipe, seeds_per_point
from odenet.studies.robustness import Outcome
from odenet.training.config import TrainConfig


def test_recipe_names_the_images_the_network_and_the_optimiser():
    base = TrainConfig(dataset="fashion-mnist", epochs=2, limit_train=3000, limit_test=2000,
                       model=ModelConfig(width=8))  # fmt: skip
    assert recipe(base) == (
        "fashion-mnist: trained on a fixed 3,000-image subset of the training split, tested on "
        "a fixed 2,000-image subset of the test split; cifar ResNet, width 8, postact blocks, "
        "shortcut A, batch norm; 2 epochs of SGD (batch 128, momentum 0.9, Nesterov, weight "
        "decay 0.0005), onecycle lr schedule, the dataset's augmentation (pad 4)."
    )


def test_recipe_names_a_swept_setting_as_swept_and_the_full_splits():
    base = TrainConfig(dataset="cifar10", weight_decay=0.0, augment=False, warmup_epochs=1.5,
                       label_smoothing=0.1, model=ModelConfig(norm="gn"))  # fmt: skip
    text = recipe(base, swept=("weight_decay", "width"))
    assert "trained on the full training split, tested on the full test split" in text
    assert "width swept" in text and "weight decay swept" in text and "width 16" not in text
    assert "gn norm" in text and "after 1.5 warm-up epochs" in text
    assert "label smoothing 0.1" in text and text.endswith("no augmentation.")


def _outcome(lr, seed, status="done", **axes):
    return Outcome(8, "euler", lr, seed, status, 0.5, (0.5,), f"r{lr}{seed}", tuple(axes.items()))


def test_seeds_per_point_counts_finished_seeds_of_each_configuration():
    same = [_outcome(0.1, s) for s in (0, 1)] + [_outcome(0.4, s) for s in (0, 1)]
    assert seeds_per_point(same) == "n = 2 seeds per point"
    mixed = same + [_outcome(0.4, 2, status="diverged"), _outcome(1.6, 0)]
    assert seeds_per_point(mixed) == "n = 1-2 seeds per point"
    one = [_outcome(0.1, 0, width=4), _outcome(0.1, 0, width=8)]  # two configurations, a seed each
    assert seeds_per_point(one) == "n = 1 seed per point"
    assert seeds_per_point([_outcome(0.1, 0, status="failed")]) == "no finished run"
