"""Which modules UniPixel's stage-3 LoRA adapts (spec §5.1, ``lora_type qkvo_all``).

Anchored so that SAM 2's own ``q_proj``/``k_proj``/``v_proj`` are never wrapped: peft matches
plain names against the last path component, which would catch SAM 2's attention too.
"""

LORA_TARGET_REGEX = (r".*(language_model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"
                     r"|visual\.blocks\.\d+\.attn\.(qkv|proj))$")
