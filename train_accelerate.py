"""Train TripletCLIP with Accelerate.

    accelerate launch train_accelerate.py                      # the built-in world, tiny model, TripletCLIP loss
    accelerate launch train_accelerate.py --config run.yaml    # settings from YAML; flags override them
    accelerate launch --multi_gpu --num_processes 8 --mixed_precision bf16 train_accelerate.py \\
        --preset vit-b-32 --tokenizer_name openai/clip-vit-base-patch32 \\
        --dataset TripletCLIP/TripletCLIP-High-Quality --streaming --train_batch_size 1024

All the work happens in `modeling_tripletclip.training`; `--help` lists every flag.
"""

import sys

from modeling_tripletclip.training.cli import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
