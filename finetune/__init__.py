"""Fine-tuning and evaluation: LS exports to samples, the LoRA recipe, metrics and mask exports."""
