"""TripletCLIP for transformers: the configuration, the model, its losses, and named starting points.

Importing this package registers the `tripletclip` model type with transformers' Auto classes, so that
`AutoConfig`, `AutoModel`, `AutoModelForZeroShotImageClassification` and `pipeline("zero-shot-image-classification")`
load TripletCLIP checkpoints natively. Published checkpoints are plain CLIP checkpoints that every CLIP client loads
without this package (``loading.CHECKPOINT_FORMATS``); the ``remote_code`` form carries this code for
`trust_remote_code=True`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForZeroShotImageClassification

from .configuration_tripletclip import LOSS_TYPES, TripletCLIPConfig
from .modeling_tripletclip import TripletCLIPModel, TripletCLIPOutput

__version__ = "0.1.0"

AutoConfig.register("tripletclip", TripletCLIPConfig, exist_ok=True)
AutoModel.register(TripletCLIPConfig, TripletCLIPModel, exist_ok=True)
AutoModelForZeroShotImageClassification.register(TripletCLIPConfig, TripletCLIPModel, exist_ok=True)
# save_pretrained writes `auto_map` and copies the modeling code next to the weights.
TripletCLIPConfig.register_for_auto_class()
TripletCLIPModel.register_for_auto_class("AutoModel")

__all__ = ["LOSS_TYPES", "TripletCLIPConfig", "TripletCLIPModel", "TripletCLIPOutput", "__version__"]
