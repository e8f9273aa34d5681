"""Publishing on the Hugging Face Hub: model and Space cards, and the `tripletclip push` commands.

- :mod:`.cards`: `render_model_card` (used by the trainer and by `push model`) and `render_space_card`, rendered from
  the templates in ``model_cards/`` through huggingface_hub's card classes.
- :mod:`.push`: stage a model, a dataset or the Space as the exact folder its repository will hold, then upload it
  (`HfApi.create_repo` + `upload_folder`).
- :mod:`.cli`: ``tripletclip push {model,dataset,space} --repo_id ID [--dry_run] ...``.
"""

from .cards import render_model_card, render_space_card
from .push import PushError, StagedFolder, publish, stage_dataset, stage_model, stage_space, upload

__all__ = [
    "PushError",
    "StagedFolder",
    "publish",
    "render_model_card",
    "render_space_card",
    "stage_dataset",
    "stage_model",
    "stage_space",
    "upload",
]
